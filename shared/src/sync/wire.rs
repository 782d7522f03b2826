//! The wire format of `datum-sync/1` and `/2`: one frame per message, a sequence number per direction,
//! postcard encoding. This module is the only place that knows the byte layout; both versions share it.
//!
//! The transport (a QUIC stream or TLS over TCP) delivers frames in order; the sequence number lets the
//! session notice a transport that did not (a duplicate, a gap, a frame from an older connection) and fail
//! safe instead of applying it. Sizes are checked before anything is decoded.

use serde::{Deserialize, Serialize};

use crate::DocId;

/// The newest protocol version this build speaks. Both ends offer every version they speak as ALPN strings
/// (`datum-sync/2`, `datum-sync/1`); the TLS handshake picks one, and each `Hello` must carry that one.
///
/// - 1: a file's pieces carry the SHA-256 of their bytes (`BlobChunk::sha256`), which receivers of the
///   first builds checked.
/// - 2: the same frames, but senders leave the piece checksum zero: every receiver relies on TLS for each
///   piece and on the whole file's SHA-256 (its name), so the sender's second pass over every byte is saved.
pub const PROTOCOL_VERSION: u32 = 2;
/// The oldest version still spoken (a hub or edge of an earlier build offers only this one).
pub const OLDEST_PROTOCOL: u32 = 1;
/// The first version whose senders leave the piece checksum zero.
pub const UNCHECKED_PIECES: u32 = 2;
/// The ALPN string of a protocol version: `datum-sync/N`.
pub fn alpn(version: u32) -> Vec<u8> {
    format!("datum-sync/{version}").into_bytes()
}

/// Every version this build speaks as ALPN strings, newest first: what a client offers and the order in which
/// a server prefers them.
pub fn offered_alpns() -> Vec<Vec<u8>> {
    (OLDEST_PROTOCOL..=PROTOCOL_VERSION).rev().map(alpn).collect()
}

/// The version a negotiated ALPN string names, if this build speaks it.
pub fn version_of_alpn(negotiated: &[u8]) -> Option<u32> {
    (OLDEST_PROTOCOL..=PROTOCOL_VERSION).find(|&version| alpn(version) == negotiated)
}

/// The largest frame either side sends or accepts (8 MiB). Checked on the length prefix, before allocation.
pub const MAX_FRAME: usize = 8 << 20;
/// Configuration files travel in chunks of this size; a chunk and its header always fit in one frame.
pub const BLOB_CHUNK: usize = 1 << 20;
/// Most documents one manifest may list.
pub const MAX_MANIFEST_DOCS: usize = 100_000;
/// Most heads one document may list in a manifest (concurrent branches; normally 1–3).
pub const MAX_HEADS: usize = 1_000;

/// A change hash (SHA-256 of an automerge change).
pub type Head = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// 1, 2, 3… per direction and connection.
    pub seq: u64,
    pub msg: Msg,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// First message of each side. The identity that counts is the certificate's; these fields are
    /// cross-checked against it and used for logs.
    Hello { protocol: u32, node: String, site_id: Option<String>, store: String },
    /// Documents that changed since the last sync with this peer (by the persisted per-peer cursor), with
    /// their heads. Documents listed by either side are synchronised.
    Manifest { docs: Vec<DocHeads> },
    /// An automerge sync message for one document.
    Sync {
        doc: DocId,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// Edge → hub: every document in this session has converged as far as the edge can see.
    DocsSynced,
    /// Hub → edge: the configuration files the hub lacks (`from` > 0 resumes a cut transfer).
    BlobWant { wants: Vec<BlobWant> },
    /// A piece of a configuration file. Under protocol 1 `sha256` is over `data`; from protocol 2 on it is
    /// zero. Receivers never rely on it: TLS protects each piece and the whole file's SHA-256 (its name) is
    /// checked before the file is kept.
    BlobChunk {
        hash: String,
        offset: u64,
        total: u64,
        sha256: Head,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The sender cannot provide this file (its copy is missing or damaged).
    BlobUnavailable { hash: String, reason: String },
    /// Edge → hub: every wanted file has been sent (or declared unavailable).
    BlobsSent,
    /// Hub → edge: the hub holds all documents and files of this session durably.
    Synced { docs: u32, blobs: u32 },
    /// An edge asks for a new certificate before the current one expires (CSR in DER).
    Renew {
        #[serde(with = "serde_bytes")]
        csr: Vec<u8>,
    },
    /// The hub's answer to `Renew`: the new chain in PEM.
    Renewed { chain_pem: String },
    /// An enrolling edge (no certificate yet) presents its one-time token.
    Enroll {
        token: String,
        site_name: String,
        site_id: String,
        node: String,
        #[serde(with = "serde_bytes")]
        csr: Vec<u8>,
    },
    /// The hub's answer to `Enroll`.
    Enrolled { chain_pem: String, root_pem: String, hub_name: String },
    /// The sender refuses to continue; the connection is closed after this.
    Reject { reason: String },
    // New variants go last: postcard numbers variants by position, and older peers must keep decoding
    // the ones they know.
    /// An edge being rebuilt from the hub (`restore-from-hub`, no certificate yet) presents a one-time token
    /// of its site. It does not know its site id: the token's site decides. `site_name`, when given, is the
    /// site the operator means to restore; the hub refuses a token of another site.
    EnrollForRestore {
        token: String,
        site_name: Option<String>,
        node: String,
        #[serde(with = "serde_bytes")]
        csr: Vec<u8>,
    },
    /// The hub's answer to `EnrollForRestore`: the certificate, and the site this node now belongs to.
    EnrolledForRestore { chain_pem: String, root_pem: String, hub_name: String, site_name: String, site_id: String },
    /// Edge → hub, between `Hello` and `Manifest`: the newest entry of the edge's audit trail. The hub refuses
    /// a head older than one it already holds from the site (a rolled-back data directory). An older edge
    /// sends none; an older hub would refuse the frame, so hubs are upgraded first.
    AuditHead(AuditHead),
    /// Hub → edge, the answer to `AuditHead`: the newest head the hub held from this site before this session
    /// (`None`: none yet). The edge checks that its own trail holds the same entry.
    AuditWitness { held: Option<AuditHead> },
    /// Edge → hub, while running: a certificate for the edge's web workspace (CSR in DER). The hub decides
    /// the name from the site; only the public key is taken from the CSR.
    WebCertRequest {
        #[serde(with = "serde_bytes")]
        csr: Vec<u8>,
    },
    /// Hub → edge, the answer to `WebCertRequest`: the chain in PEM, or why not. The session goes on either
    /// way (a hub without a web domain simply issues none).
    WebCertAnswer { chain_pem: Option<String>, refused: Option<String> },
    /// Hub → a node being enrolled, on the enrollment connection right after `Enrolled` or
    /// `EnrolledForRestore`: the hub's Ed25519 publishing key (32 bytes), which the node pins to check what
    /// the hub publishes (templates). An older edge reads only the answer and hangs up, so it never sees this;
    /// an older hub sends none (the node then has no key and accepts no template).
    PublishingKey {
        #[serde(with = "serde_bytes")]
        key: Vec<u8>,
    },
}

/// The newest entry of a site's audit trail, as presented on the wire: its sequence number, its hash (hex
/// SHA-256) and the site key's Ed25519 signature over the hash (hex), as stored with the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocHeads {
    pub doc: DocId,
    pub heads: Vec<Head>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobWant {
    pub hash: String,
    pub from: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME}")]
    TooLarge { len: usize },
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("{what}: {n} entries exceed the limit of {max}")]
    TooMany { what: &'static str, n: usize, max: usize },
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encodes every Frame into a Vec")
    }

    /// `encode` into a buffer the caller reuses (cleared first): a file streamed in 1 MiB pieces would
    /// otherwise take fresh memory from the system for every frame.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut buf = std::mem::take(out);
        buf.clear();
        *out = postcard::to_extend(self, buf).expect("postcard encodes every Frame into a Vec");
    }

    /// Decodes one frame payload (the transport strips the length prefix after checking it).
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        if bytes.len() > MAX_FRAME {
            return Err(DecodeError::TooLarge { len: bytes.len() });
        }
        let frame: Frame = postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        frame.check_limits()?;
        Ok(frame)
    }

    fn check_limits(&self) -> Result<(), DecodeError> {
        let too_many = |what, n, max| if n > max { Err(DecodeError::TooMany { what, n, max }) } else { Ok(()) };
        match &self.msg {
            Msg::Manifest { docs } => {
                too_many("manifest documents", docs.len(), MAX_MANIFEST_DOCS)?;
                for d in docs {
                    too_many("document heads", d.heads.len(), MAX_HEADS)?;
                }
                Ok(())
            }
            Msg::BlobChunk { data, .. } => too_many("blob chunk bytes", data.len(), BLOB_CHUNK),
            Msg::BlobWant { wants } => too_many("wanted blobs", wants.len(), MAX_MANIFEST_DOCS),
            Msg::AuditHead(head) => audit_head_limits(head),
            Msg::AuditWitness { held: Some(head) } => audit_head_limits(head),
            _ => Ok(()),
        }
    }
}

/// A hash is 64 hex digits and an Ed25519 signature 128; anything much longer is not one.
fn audit_head_limits(head: &AuditHead) -> Result<(), DecodeError> {
    if head.hash.len() > 128 || head.signature.len() > 256 {
        return Err(DecodeError::TooMany {
            what: "audit head characters",
            n: head.hash.len() + head.signature.len(),
            max: 384,
        });
    }
    Ok(())
}

/// Is `s` a lowercase hex SHA-256, the only form a blob name may take on the wire (it becomes a key and a
/// file name)?
pub fn is_blob_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn doc_id() -> impl Strategy<Value = DocId> {
        prop_oneof![
            "[a-f0-9]{16}".prop_map(|s| DocId::site(&s, "inventory")),
            Just(DocId::parse("hub/templates").expect("valid id")),
        ]
    }

    fn audit_head() -> impl Strategy<Value = AuditHead> {
        (any::<u64>(), "[a-f0-9]{64}", "[a-f0-9]{128}").prop_map(|(seq, hash, signature)| AuditHead {
            seq,
            hash,
            signature,
        })
    }

    fn msg() -> impl Strategy<Value = Msg> {
        let bytes = proptest::collection::vec(any::<u8>(), 0..64);
        prop_oneof![
            ("[a-z0-9-]{0,20}", proptest::option::of("[a-f0-9]{16}"), "[a-f0-9]{8}")
                .prop_map(|(node, site_id, store)| Msg::Hello { protocol: PROTOCOL_VERSION, node, site_id, store }),
            proptest::collection::vec((doc_id(), proptest::collection::vec(any::<[u8; 32]>(), 0..3)), 0..4).prop_map(
                |docs| Msg::Manifest { docs: docs.into_iter().map(|(doc, heads)| DocHeads { doc, heads }).collect() }
            ),
            (doc_id(), bytes.clone()).prop_map(|(doc, data)| Msg::Sync { doc, data }),
            Just(Msg::DocsSynced),
            ("[a-f0-9]{64}", any::<u64>())
                .prop_map(|(hash, from)| Msg::BlobWant { wants: vec![BlobWant { hash, from }] }),
            ("[a-f0-9]{64}", any::<u64>(), any::<u64>(), any::<[u8; 32]>(), bytes.clone())
                .prop_map(|(hash, offset, total, sha256, data)| Msg::BlobChunk { hash, offset, total, sha256, data }),
            (any::<u32>(), any::<u32>()).prop_map(|(docs, blobs)| Msg::Synced { docs, blobs }),
            bytes.clone().prop_map(|csr| Msg::Renew { csr }),
            bytes.clone().prop_map(|csr| Msg::WebCertRequest { csr }),
            (proptest::option::of(".{0,40}"), proptest::option::of(".{0,40}"))
                .prop_map(|(chain_pem, refused)| Msg::WebCertAnswer { chain_pem, refused }),
            bytes.clone().prop_map(|key| Msg::PublishingKey { key }),
            ".{0,40}".prop_map(|reason| Msg::Reject { reason }),
            (
                ".{0,20}",
                proptest::option::of("[a-z0-9-]{1,20}"),
                "[a-z0-9-]{1,20}",
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(token, site_name, node, csr)| Msg::EnrollForRestore {
                    token,
                    site_name,
                    node,
                    csr
                }),
            (".{0,40}", "[a-z0-9-]{1,20}", "[a-f0-9]{16}").prop_map(|(pem, site_name, site_id)| {
                Msg::EnrolledForRestore {
                    chain_pem: pem.clone(),
                    root_pem: pem,
                    hub_name: "hub".into(),
                    site_name,
                    site_id,
                }
            }),
            audit_head().prop_map(Msg::AuditHead),
            proptest::option::of(audit_head()).prop_map(|held| Msg::AuditWitness { held }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip(seq in any::<u64>(), msg in msg()) {
            let frame = Frame { seq, msg };
            prop_assert_eq!(Frame::decode(&frame.encode()), Ok(frame));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Frame::decode(&bytes);
        }
    }

    /// A frame encoded into a reused buffer is the frame `encode` makes.
    #[test]
    fn encoding_into_a_reused_buffer_gives_the_same_bytes() {
        let piece = Frame {
            seq: 9,
            msg: Msg::BlobChunk { hash: "ab".repeat(32), offset: 7, total: 9000, sha256: [3; 32], data: vec![7; 5000] },
        };
        let mut buf = vec![1, 2, 3];
        piece.encode_into(&mut buf);
        assert_eq!(buf, piece.encode());
        let capacity = buf.capacity();
        let small = Frame { seq: 10, msg: Msg::BlobsSent };
        small.encode_into(&mut buf);
        assert_eq!(buf, small.encode());
        assert_eq!(buf.capacity(), capacity, "the buffer is reused, not replaced");
    }

    /// The byte layout of a piece, pinned: byte fields are written as postcard writes any `Vec<u8>` (a length,
    /// then the bytes), so peers of before and after the switch to `serde_bytes` (one copy instead of a
    /// per-byte visit) read each other's frames.
    #[test]
    fn a_piece_has_the_layout_older_peers_read() {
        let frame = Frame {
            seq: 5,
            msg: Msg::BlobChunk { hash: "ab".into(), offset: 1, total: 300, sha256: [7; 32], data: vec![1, 2, 3] },
        };
        let mut expected = vec![5, 5, 2, b'a', b'b', 1, 0xac, 0x02];
        expected.extend([7; 32]);
        expected.extend([3, 1, 2, 3]);
        assert_eq!(frame.encode(), expected);
        let sync =
            Frame { seq: 1, msg: Msg::Sync { doc: DocId::site("0123456789abcdef", "inventory"), data: vec![9; 200] } };
        let encoded = sync.encode();
        assert_eq!(&encoded[encoded.len() - 202..encoded.len() - 200], &[0xc8, 0x01], "length of the data");
        assert_eq!(Frame::decode(&encoded), Ok(sync));
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(Frame::decode(&vec![0; MAX_FRAME + 1]), Err(DecodeError::TooLarge { len: MAX_FRAME + 1 }));
        let big = Frame {
            seq: 1,
            msg: Msg::BlobChunk {
                hash: "a".repeat(64),
                offset: 0,
                total: 1,
                sha256: [0; 32],
                data: vec![0; BLOB_CHUNK + 1],
            },
        };
        assert!(matches!(Frame::decode(&big.encode()), Err(DecodeError::TooMany { .. })));
        // A document id that does not parse is refused while decoding, not later.
        let mut bad = Frame { seq: 1, msg: Msg::Sync { doc: DocId::site("ab", "inventory"), data: vec![] } }.encode();
        let pos = bad.windows(4).position(|w| w == b"site").expect("id is in the frame");
        bad[pos] = b'x';
        assert!(matches!(Frame::decode(&bad), Err(DecodeError::Malformed(_))));
    }

    /// Versions travel as ALPN strings; only the ones this build speaks are understood, newest offered first.
    #[test]
    fn versions_are_named_by_alpn() {
        assert_eq!(offered_alpns(), vec![b"datum-sync/2".to_vec(), b"datum-sync/1".to_vec()]);
        assert_eq!(version_of_alpn(b"datum-sync/1"), Some(1));
        assert_eq!(version_of_alpn(b"datum-sync/2"), Some(2));
        for unknown in [&b"datum-sync/3"[..], b"datum-sync/0", b"datum-sync/", b"datum-sync/+2", b"http/1.1", b""] {
            assert_eq!(version_of_alpn(unknown), None, "{:?}", String::from_utf8_lossy(unknown));
        }
    }

    #[test]
    fn blob_hash_form() {
        assert!(is_blob_hash(&"0a".repeat(32)));
        assert!(!is_blob_hash(&"0A".repeat(32)));
        assert!(!is_blob_hash("../etc/passwd"));
    }
}
