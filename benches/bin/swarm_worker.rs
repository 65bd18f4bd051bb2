//! One worker process of a swarm of subscribers (`loadgen::swarm`): the scale benchmark and its
//! quick mode in `make test` start several, each holding its share of the streams.

fn main() {
    loadgen::swarm::worker_main();
}
