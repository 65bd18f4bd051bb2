//! Topic patterns, as tokens (`herald.subscribe`, `herald.publish`) and `HERALD_PUBLIC_TOPICS`
//! write them: a topic name split on `.` into segments, where a `*` segment matches any one
//! segment and a final `**` matches one or more segments (`user.42`, `user.42.*`, `orders.**`).
//!
//! Topic names cannot hold `*` (see [`Topic::parse`]), so a pattern never means two things: a
//! segment is either a wildcard or a literal, and partial wildcards such as `user*` are refused.

use std::{fmt, str::FromStr};

use serde::Deserialize;

use crate::server::event::{InvalidField, Topic};

/// A parsed topic pattern.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TopicPattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// A final `**`: one segment or more.
    Rest,
}

impl TopicPattern {
    /// Parses a pattern: segments of the characters a topic may hold, or `*`, or a final `**`.
    pub fn parse(text: &str) -> Result<Self, InvalidField> {
        let refuse = |reason: String| Err(InvalidField::new("topic pattern", format!("{text:?} {reason}")));
        if text.is_empty() || text.len() > Topic::MAX_LEN {
            return refuse(format!("must be 1 to {} characters long", Topic::MAX_LEN));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            segments.push(match *part {
                "*" => Segment::One,
                "**" if index + 1 == parts.len() => Segment::Rest,
                "**" => return refuse("may hold `**` only as its last segment".to_owned()),
                literal if literal.contains('*') => {
                    return refuse("may hold `*` only as a whole segment, such as user.*".to_owned())
                }
                // The literal parts, joined back, are a topic name: checked as one.
                literal => Segment::Literal(literal.to_owned()),
            });
        }
        let literal = text.replace('*', "x");
        if let Err(invalid) = Topic::parse(&literal) {
            return refuse(invalid.reason);
        }
        Ok(Self { text: text.to_owned(), segments })
    }

    /// Whether `topic` is one of the topics this pattern names.
    pub fn matches(&self, topic: &Topic) -> bool {
        let mut names = topic.as_str().split('.');
        for segment in &self.segments {
            match (segment, names.next()) {
                (_, None) => return false,
                (Segment::Rest, Some(_)) => return true,
                (Segment::One, Some(_)) => {}
                (Segment::Literal(literal), Some(name)) if literal == name => {}
                (Segment::Literal(_), Some(_)) => return false,
            }
        }
        names.next().is_none()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Whether any of `patterns` matches `topic`.
pub fn covers(patterns: &[TopicPattern], topic: &Topic) -> bool {
    patterns.iter().any(|pattern| pattern.matches(topic))
}

impl FromStr for TopicPattern {
    type Err = InvalidField;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for TopicPattern {
    type Error = InvalidField;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn matches(pattern: &str, topic: &str) -> bool {
        TopicPattern::parse(pattern).unwrap().matches(&Topic::parse(topic).unwrap())
    }

    /// The rule as the docs state it, on whole strings, by recursion: the reference the matcher
    /// is held to.
    fn reference(pattern: &[&str], topic: &[&str]) -> bool {
        match (pattern, topic) {
            ([], []) => true,
            (["**"], rest) => !rest.is_empty(),
            ([first, pattern @ ..], [name, topic @ ..]) => {
                (*first == "*" || first == name) && reference(pattern, topic)
            }
            _ => false,
        }
    }

    #[test]
    fn the_documented_examples_match_what_they_say() {
        for (pattern, topic, expected) in [
            ("user.42", "user.42", true),
            ("user.42", "user.421", false),
            ("user.42", "user.42.orders", false),
            ("user.42.*", "user.42.orders", true),
            ("user.42.*", "user.42", false),
            ("user.42.*", "user.42.orders.7", false),
            ("orders.**", "orders.eu", true),
            ("orders.**", "orders.eu.7.shipped", true),
            ("orders.**", "orders", false),
            ("*.created", "orders.created", true),
            ("*.created", "created", false),
            ("**", "anything.at.all", true),
        ] {
            assert_eq!(matches(pattern, topic), expected, "{pattern} against {topic}");
        }
    }

    #[test]
    fn ambiguous_or_malformed_patterns_are_refused_with_the_reason() {
        for bad in ["", "user*", "user.4*", "**.user", "a.**.b", "a/b", "a b", "***", &"x".repeat(129)] {
            let err = TopicPattern::parse(bad).unwrap_err();
            assert_eq!(err.field, "topic pattern", "{bad:?}");
        }
    }

    fn segment() -> impl Strategy<Value = String> {
        // A small alphabet, so that literal segments often coincide.
        prop_oneof![Just("a".to_owned()), Just("b".to_owned()), Just(String::new()), "[a-c0-9:_-]{1,3}"]
    }

    fn pattern_segment() -> impl Strategy<Value = String> {
        prop_oneof![3 => segment(), 1 => Just("*".to_owned())]
    }

    proptest! {
        #[test]
        fn the_matcher_agrees_with_the_reference(
            topic in prop::collection::vec(segment(), 1..6),
            pattern in prop::collection::vec(pattern_segment(), 1..6),
            rest in any::<bool>(),
        ) {
            let mut pattern = pattern;
            if rest {
                pattern.push("**".to_owned());
            }
            let (topic_text, pattern_text) = (topic.join("."), pattern.join("."));
            prop_assume!(Topic::parse(&topic_text).is_ok() && !pattern_text.is_empty());
            let parsed = TopicPattern::parse(&pattern_text).unwrap();
            let pattern: Vec<&str> = pattern.iter().map(String::as_str).collect();
            let topic_segments: Vec<&str> = topic.iter().map(String::as_str).collect();
            prop_assert_eq!(
                parsed.matches(&Topic::parse(&topic_text).unwrap()),
                reference(&pattern, &topic_segments),
                "{} against {}", pattern_text, topic_text
            );
        }

        #[test]
        fn a_topic_written_as_a_pattern_matches_itself_alone(
            topic in prop::collection::vec(segment(), 1..6),
            other in prop::collection::vec(segment(), 1..6),
        ) {
            let (topic, other) = (topic.join("."), other.join("."));
            prop_assume!(Topic::parse(&topic).is_ok() && Topic::parse(&other).is_ok());
            let pattern = TopicPattern::parse(&topic).unwrap();
            prop_assert!(pattern.matches(&Topic::parse(&topic).unwrap()));
            prop_assert_eq!(pattern.matches(&Topic::parse(&other).unwrap()), topic == other);
        }
    }
}
