//! Who hears a notification: the topics a site defines and subscribers choose, the user
//! ids a signed-in site vouches for, and the audience of a send (topics, users, both, or
//! everyone). Wire shapes and their checks, shared by the server, the page and the console.

use serde::{Deserialize, Serialize};

/// A topic name is 1 to this many characters of `[a-z0-9_-]`.
pub const MAX_TOPIC_NAME_CHARS: usize = 64;
/// A topic's label, shown next to its checkbox.
pub const MAX_TOPIC_LABEL_CHARS: usize = 100;
pub const MAX_TOPIC_DESCRIPTION_CHARS: usize = 500;
/// Topics a server may define: the page shows them all as checkboxes.
pub const MAX_TOPICS: usize = 100;
/// A user id (an identity token's `sub`) is 1 to this many characters.
pub const MAX_USER_ID_CHARS: usize = 128;
/// Users one send may name.
pub const MAX_USERS_PER_SEND: usize = 10_000;

/// A topic as `GET /api/v1/topics` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub description: String,
    /// Given to a subscription that chose no topics.
    #[serde(default)]
    pub default: bool,
}

/// The body of `PUT /api/v1/topics/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDefinition {
    pub label: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: Option<bool>,
}

/// Who a send reaches. Both empty: everyone. Both set: the subscriptions that match both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audience {
    /// Subscriptions with any of these topics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Every subscription of these user ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
}

impl Audience {
    /// True when the send goes to everyone.
    pub fn is_everyone(&self) -> bool {
        self.topics.is_empty() && self.users.is_empty()
    }
}

/// A field that failed its check, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct AudienceError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> AudienceError {
    AudienceError { field, reason: reason.into() }
}

/// Checks a topic name: 1 to 64 characters of `[a-z0-9_-]`.
pub fn check_topic_name(field: &'static str, name: &str) -> Result<(), AudienceError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_TOPIC_NAME_CHARS
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(refuse(field, format!("topic {name:?} is not a topic name (1 to {MAX_TOPIC_NAME_CHARS} characters of a-z, 0-9, _ and -)")))
    }
}

/// Checks a user id: 1 to 128 characters, none of them control characters.
pub fn check_user_id(field: &'static str, id: &str) -> Result<(), AudienceError> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_USER_ID_CHARS || id.chars().any(char::is_control) {
        return Err(refuse(field, format!("a user id is 1 to {MAX_USER_ID_CHARS} characters, without control characters")));
    }
    Ok(())
}

impl TopicDefinition {
    /// Checks the label and description.
    pub fn check(&self) -> Result<(), AudienceError> {
        let label = self.label.trim().chars().count();
        if label == 0 || label > MAX_TOPIC_LABEL_CHARS {
            return Err(refuse("label", format!("is required, at most {MAX_TOPIC_LABEL_CHARS} characters")));
        }
        if self.description.as_deref().is_some_and(|d| d.chars().count() > MAX_TOPIC_DESCRIPTION_CHARS) {
            return Err(refuse("description", format!("is longer than {MAX_TOPIC_DESCRIPTION_CHARS} characters")));
        }
        Ok(())
    }
}

/// Checks a list of topic names and returns it sorted, without repeats. `field` names
/// the JSON member in errors.
pub fn topic_set(field: &'static str, topics: &[String]) -> Result<Vec<String>, AudienceError> {
    if topics.len() > MAX_TOPICS {
        return Err(refuse(field, format!("at most {MAX_TOPICS} topics")));
    }
    for topic in topics {
        check_topic_name(field, topic)?;
    }
    let mut set = topics.to_vec();
    set.sort();
    set.dedup();
    Ok(set)
}

/// Checks a send's audience: `topics` and `users`, when given, name at least one member
/// each (an empty list must never mean "everyone"). Returns it sorted, without repeats.
pub fn audience(topics: Option<&[String]>, users: Option<&[String]>) -> Result<Audience, AudienceError> {
    let topics = match topics {
        Some([]) => return Err(refuse("topics", "names no topic; leave it out to send to everyone")),
        Some(list) => topic_set("topics", list)?,
        None => Vec::new(),
    };
    let users = match users {
        Some([]) => return Err(refuse("users", "names no user; leave it out to send to everyone")),
        Some(list) if list.len() > MAX_USERS_PER_SEND => {
            return Err(refuse("users", format!("at most {MAX_USERS_PER_SEND} users per send")));
        }
        Some(list) => {
            for user in list {
                check_user_id("users", user)?;
            }
            let mut set = list.to_vec();
            set.sort();
            set.dedup();
            set
        }
        None => Vec::new(),
    };
    Ok(Audience { topics, users })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn topic_names_are_short_lowercase_words() {
        for good in ["news", "a", "breaking_news-2", &"x".repeat(64)] {
            assert!(check_topic_name("name", good).is_ok(), "{good}");
        }
        for bad in ["", "News", "has space", "ünï", &"x".repeat(65), "a.b"] {
            assert_eq!(check_topic_name("name", bad).unwrap_err().field, "name", "{bad}");
        }
    }

    #[test]
    fn an_empty_list_never_means_everyone() {
        assert_eq!(audience(Some(&[]), None).unwrap_err().field, "topics");
        assert_eq!(audience(None, Some(&[])).unwrap_err().field, "users");
        assert!(audience(None, None).unwrap().is_everyone());
    }

    #[test]
    fn audiences_are_sorted_sets() {
        let a = audience(Some(&strings(&["sport", "news", "news"])), Some(&strings(&["u2", "u1", "u2"]))).unwrap();
        assert_eq!(a.topics, strings(&["news", "sport"]));
        assert_eq!(a.users, strings(&["u1", "u2"]));
        let too_many: Vec<String> = (0..=MAX_USERS_PER_SEND).map(|i| i.to_string()).collect();
        assert_eq!(audience(None, Some(&too_many)).unwrap_err().field, "users");
        assert_eq!(audience(None, Some(&strings(&["a\nb"]))).unwrap_err().field, "users");
        assert_eq!(audience(None, Some(&["x".repeat(129)])).unwrap_err().field, "users");
    }

    #[test]
    fn the_wire_shape_leaves_out_what_is_not_set() {
        let a = Audience { topics: strings(&["news"]), users: vec![] };
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"topics":["news"]}"#);
    }
}
