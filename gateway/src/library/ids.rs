//! The ids the library API hands out, which encode what they name so no table is needed:
//! container `collection_name`, image `collection_name_<sha256 hex>`. Collections never contain
//! `_`, and the hex has a fixed length, so both split unambiguously.

use shubnet_protocol::reference::Reference;
use std::fmt;

/// A container's id.
pub fn container_id(collection: &str, name: &str) -> String {
    format!("{collection}_{name}")
}

/// `(collection, name)` of a container id, if both follow the naming rules.
pub fn parse_container_id(id: &str) -> Option<(String, String)> {
    let (c, n) = id.split_once('_')?;
    Reference::new(c, n, "latest").ok()?;
    Some((c.to_owned(), n.to_owned()))
}

/// An image: a container and the whole-file sha256 of its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageId {
    /// The collection.
    pub collection: String,
    /// The container name.
    pub name: String,
    /// Whole-file sha256.
    pub sha256: [u8; 32],
}

impl ImageId {
    /// Parses `collection_name_<64 hex>`.
    pub fn parse(id: &str) -> Option<Self> {
        let (container, hex_part) = id.rsplit_once('_')?;
        let bytes = hex::decode(hex_part).ok()?;
        let sha256 = <[u8; 32]>::try_from(bytes.as_slice()).ok()?;
        let (collection, name) = parse_container_id(container)?;
        Some(Self {
            collection,
            name,
            sha256,
        })
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}",
            container_id(&self.collection, &self.name),
            hex::encode(self.sha256)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_roundtrip() {
        let id = ImageId {
            collection: "lab-a".into(),
            name: "my_tool.x".into(),
            sha256: [0xab; 32],
        };
        assert_eq!(ImageId::parse(&id.to_string()), Some(id));
        assert_eq!(
            parse_container_id("lab-a_my_tool"),
            Some(("lab-a".into(), "my_tool".into()))
        );
        assert_eq!(parse_container_id("../x_y"), None);
        assert_eq!(ImageId::parse("lab-a_x_zz"), None);
    }
}
