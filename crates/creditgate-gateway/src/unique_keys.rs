//! Refusing JSON bodies that repeat an object key: the upstream may read such a body differently
//! than we do (which `"stream"` wins?), so what we price could differ from what it runs.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// `Err` naming the first object key that appears twice in one object, anywhere in `bytes`
/// (keys are compared after unescaping, so `"stream"` and `"\u0073tream"` are the same key).
/// Walks the document without building it. Bytes that are not JSON pass (the caller's parser
/// reports them).
pub fn check(bytes: &[u8]) -> Result<(), String> {
    match serde_json::from_slice::<Walked>(bytes) {
        Err(e) if e.is_data() => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// A value that was walked and found without repeated keys.
struct Walked;

impl<'de> Deserialize<'de> for Walked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Walk)
    }
}

struct Walk;

impl<'de> Visitor<'de> for Walk {
    type Value = Walked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Walked, E> {
        Ok(Walked)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Walked, E> {
        Ok(Walked)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Walked, E> {
        Ok(Walked)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Walked, E> {
        Ok(Walked)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Walked, E> {
        Ok(Walked)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Walked, E> {
        Ok(Walked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Walked, A::Error> {
        while seq.next_element::<Walked>()?.is_some() {}
        Ok(Walked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Walked, A::Error> {
        let mut seen = Seen::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if !seen.insert(key.clone()) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!(
                    "the key `{shown}` appears twice in one object"
                )));
            }
            map.next_value::<Walked>()?;
        }
        Ok(Walked)
    }
}

/// Objects with at most this many keys are checked by a linear search (no hashing, no
/// allocation past the list); a larger one moves its keys to a hash set.
const LINEAR_KEYS: usize = 16;

/// The keys of one object seen so far, borrowed from the body when they have no escapes.
enum Seen<'de> {
    Few(Vec<Cow<'de, str>>),
    Many(HashSet<Cow<'de, str>>),
}

impl Default for Seen<'_> {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl<'de> Seen<'de> {
    /// `false` when `key` was seen already.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        match self {
            Self::Few(keys) if keys.contains(&key) => false,
            Self::Few(keys) if keys.len() < LINEAR_KEYS => {
                keys.push(key);
                true
            }
            Self::Few(keys) => {
                let mut set: HashSet<_> = keys.drain(..).collect();
                set.insert(key);
                *self = Self::Many(set);
                true
            }
            Self::Many(set) => set.insert(key),
        }
    }
}

/// An object key, borrowed from the body unless it had to be unescaped.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_found_at_any_depth_and_after_unescaping() {
        assert!(check(br#"{"model":"m","stream":false,"stream":true}"#).is_err());
        assert!(check(br#"{"a":[{"b":1,"c":{"d":1,"d":2}}]}"#).is_err());
        assert!(check(br#"{"stream":false,"\u0073tream":true}"#).is_err());
        assert!(check(br#"{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]}"#).is_ok());
        assert!(check(b"not json").is_ok(), "left to the caller's parser");
        // Past the linear search's size, and with escaped keys (owned, not borrowed).
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\":{i}")).collect();
        let body = format!("{{{}}}", many.join(","));
        assert!(check(body.as_bytes()).is_ok());
        let repeated = format!("{{{},\"k3\":0}}", many.join(","));
        assert!(check(repeated.as_bytes()).unwrap_err().contains("`k3`"));
        let escaped = format!("{{{},\"\\u006b39\":0}}", many.join(","));
        assert!(check(escaped.as_bytes()).unwrap_err().contains("`k39`"));
    }
}
