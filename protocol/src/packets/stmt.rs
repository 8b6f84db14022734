//! Prepared-statement packets.

use bytes::{BufMut, Bytes, BytesMut};

use crate::constants::OK_HEADER;
use crate::lenenc::{DecodeError, Reader};

/// `COM_STMT_PREPARE_OK`: the server's answer to a successful prepare,
/// followed by `num_params` and `num_columns` column definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StmtPrepareOk {
    pub statement_id: u32,
    pub num_columns: u16,
    pub num_params: u16,
    pub warnings: u16,
    /// MySQL 8 `CLIENT_OPTIONAL_RESULTSET_METADATA`: whether definitions
    /// follow (1) or not (0). `None` when the byte is absent.
    pub metadata_follows: Option<u8>,
}

impl StmtPrepareOk {
    const LEN: usize = 12;

    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "StmtPrepareOk");
        if r.u8()? != OK_HEADER {
            return Err(r.invalid());
        }
        let statement_id = r.u32_le()?;
        let num_columns = r.u16_le()?;
        let num_params = r.u16_le()?;
        r.set_context("StmtPrepareOk filler");
        if r.u8()? != 0 {
            return Err(r.invalid());
        }
        r.set_context("StmtPrepareOk warnings");
        let warnings = r.u16_le()?;
        let metadata_follows = if r.is_empty() { None } else { Some(r.u8()?) };
        r.finish()?;
        Ok(StmtPrepareOk {
            statement_id,
            num_columns,
            num_params,
            warnings,
            metadata_follows,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(Self::LEN + 1);
        out.put_u8(OK_HEADER);
        out.put_u32_le(self.statement_id);
        out.put_u16_le(self.num_columns);
        out.put_u16_le(self.num_params);
        out.put_u8(0);
        out.put_u16_le(self.warnings);
        if let Some(m) = self.metadata_follows {
            out.put_u8(m);
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let wire = [0, 1, 0, 0, 0, 2, 0, 1, 0, 0, 0, 0];
        let p = StmtPrepareOk::decode(&wire).unwrap();
        assert_eq!(
            p,
            StmtPrepareOk {
                statement_id: 1,
                num_columns: 2,
                num_params: 1,
                warnings: 0,
                metadata_follows: None
            }
        );
        assert_eq!(&p.to_bytes()[..], &wire);
        let mut with_meta = wire.to_vec();
        with_meta.push(1);
        let p = StmtPrepareOk::decode(&with_meta).unwrap();
        assert_eq!(p.metadata_follows, Some(1));
        assert_eq!(&p.to_bytes()[..], &with_meta[..]);
        assert!(StmtPrepareOk::decode(&wire[..11]).is_err());
        with_meta.push(0);
        assert!(StmtPrepareOk::decode(&with_meta).is_err());
    }
}
