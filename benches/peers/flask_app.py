"""The seed's design, a baseline of benches/compare.rs: Flask with a generator per subscriber.

Each subscriber gets its own queue and a generator that formats and yields whatever arrives
there; a publish puts the data into every queue. It runs under gunicorn with one gevent worker,
so every subscriber is a greenlet of one process and the queues reach them all.

GET /events subscribes; POST /publish sends its body as the next event's data.
"""

import gevent.queue
from flask import Flask, Response, request

app = Flask(__name__)
subscribers = set()


@app.post("/publish")
def publish():
    data = request.get_data(as_text=True)
    for queue in list(subscribers):
        queue.put(data)
    return "", 202


@app.get("/events")
def events():
    # Registered before the response starts, so an event published once the headers are out
    # reaches this subscriber.
    queue = gevent.queue.Queue()
    subscribers.add(queue)

    def stream():
        try:
            # A comment first, so that gunicorn sends the headers without waiting for an event.
            yield ":\n\n"
            while True:
                yield f"data: {queue.get()}\n\n"
        finally:
            subscribers.discard(queue)

    return Response(stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})
