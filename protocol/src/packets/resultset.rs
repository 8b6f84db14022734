//! Result-set packets: column definitions, text and binary rows, and a
//! builder that can only produce well-formed result sets.

use bytes::{BufMut, Bytes, BytesMut};

use super::share;
use super::OkPacket;
use crate::constants::{
    CapabilityFlags, ColumnFlags, ColumnType, StatusFlags, BINARY_ROW_HEADER, CHARSET_BINARY,
    CHARSET_UTF8MB4_GENERAL_CI, NULL_VALUE,
};
use crate::lenenc::{lenenc_bytes_len, put_lenenc_bytes, put_lenenc_int, DecodeError, Reader};
use crate::packets::EofPacket;

/// Value of the length prefix in front of a column definition's fixed
/// fields (charset .. decimals + 2 filler bytes).
const FIXED_FIELDS_LEN: u64 = 0x0c;

/// `ColumnDefinition41`: metadata of one result-set column (or prepared
/// statement parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDefinition41 {
    /// Always `def` in practice.
    pub catalog: Bytes,
    pub schema: Bytes,
    /// Table alias.
    pub table: Bytes,
    /// Physical table.
    pub org_table: Bytes,
    /// Column alias.
    pub name: Bytes,
    /// Physical column.
    pub org_name: Bytes,
    /// MariaDB extended type info (`MARIADB_CLIENT_EXTENDED_METADATA`): the
    /// raw content of the length-encoded block between `org_name` and the
    /// fixed fields. Must be `Some` (possibly empty) exactly when the
    /// capability is negotiated, since the client then expects the block.
    pub extended_metadata: Option<Bytes>,
    /// Collation id (two bytes on the wire, unlike the handshake's one).
    pub character_set: u16,
    /// Maximum display length.
    pub column_length: u32,
    pub column_type: ColumnType,
    pub flags: ColumnFlags,
    pub decimals: u8,
    /// COM_FIELD_LIST appends the column default as a length-encoded
    /// string; kept raw (with its length prefix) after the filler bytes.
    pub default_values: Option<Bytes>,
}

impl ColumnDefinition41 {
    /// `capabilities` matters only for MariaDB's extended metadata.
    pub fn decode(payload: &Bytes, capabilities: CapabilityFlags) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "ColumnDefinition41 names");
        let catalog = share(payload, r.lenenc_bytes()?);
        let schema = share(payload, r.lenenc_bytes()?);
        let table = share(payload, r.lenenc_bytes()?);
        let org_table = share(payload, r.lenenc_bytes()?);
        let name = share(payload, r.lenenc_bytes()?);
        let org_name = share(payload, r.lenenc_bytes()?);
        r.set_context("ColumnDefinition41 extended_metadata");
        let extended_metadata =
            if capabilities.contains(CapabilityFlags::MARIADB_CLIENT_EXTENDED_METADATA) {
                Some(share(payload, r.lenenc_bytes()?))
            } else {
                None
            };
        r.set_context("ColumnDefinition41 fixed fields length");
        if r.lenenc_int()? != FIXED_FIELDS_LEN {
            return Err(r.invalid());
        }
        r.set_context("ColumnDefinition41 fixed fields");
        let character_set = r.u16_le()?;
        let column_length = r.u32_le()?;
        r.set_context("ColumnDefinition41 column_type");
        let column_type = ColumnType::from_u8(r.u8()?).ok_or_else(|| r.invalid())?;
        r.set_context("ColumnDefinition41 fixed fields");
        let flags = ColumnFlags(r.u16_le()?);
        let decimals = r.u8()?;
        r.set_context("ColumnDefinition41 filler");
        if r.u16_le()? != 0 {
            return Err(r.invalid());
        }
        let rest = r.rest();
        let default_values = (!rest.is_empty()).then(|| share(payload, rest));
        Ok(ColumnDefinition41 {
            catalog,
            schema,
            table,
            org_table,
            name,
            org_name,
            extended_metadata,
            character_set,
            column_length,
            column_type,
            flags,
            decimals,
            default_values,
        })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        let names = [
            &self.catalog,
            &self.schema,
            &self.table,
            &self.org_table,
            &self.name,
            &self.org_name,
        ];
        out.reserve(
            names
                .iter()
                .map(|n| lenenc_bytes_len(n.len()))
                .sum::<usize>()
                + self
                    .extended_metadata
                    .as_ref()
                    .map_or(0, |m| lenenc_bytes_len(m.len()))
                + 13
                + self.default_values.as_ref().map_or(0, Bytes::len),
        );
        for n in names {
            put_lenenc_bytes(out, n);
        }
        if let Some(m) = &self.extended_metadata {
            put_lenenc_bytes(out, m);
        }
        put_lenenc_int(out, FIXED_FIELDS_LEN);
        out.put_u16_le(self.character_set);
        out.put_u32_le(self.column_length);
        out.put_u8(self.column_type as u8);
        out.put_u16_le(self.flags.0);
        out.put_u8(self.decimals);
        out.put_u16_le(0);
        if let Some(d) = &self.default_values {
            out.put_slice(d);
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

/// A column definition for results the proxy produces itself (admin
/// console, hook replies): catalog `def`, no schema/table, `org_name` equal
/// to `name`, and the charset/length/flags a server would use for the type
/// (`utf8mb4_general_ci` for text, `binary` with `NUM` for numbers).
pub fn simple_column(name: &str, column_type: ColumnType) -> ColumnDefinition41 {
    use ColumnType as T;
    let numeric = ColumnFlags::BINARY | ColumnFlags::NUM;
    let (character_set, column_length, flags, decimals) = match column_type {
        T::Tiny => (CHARSET_BINARY, 4, numeric, 0),
        T::Short => (CHARSET_BINARY, 6, numeric, 0),
        T::Int24 => (CHARSET_BINARY, 9, numeric, 0),
        T::Long => (CHARSET_BINARY, 11, numeric, 0),
        T::LongLong => (CHARSET_BINARY, 21, numeric, 0),
        // 31 is NOT_FIXED_DEC: no fixed number of decimals.
        T::Float => (CHARSET_BINARY, 12, numeric, 31),
        T::Double => (CHARSET_BINARY, 22, numeric, 31),
        T::Decimal | T::NewDecimal => (CHARSET_BINARY, 67, numeric, 2),
        T::Year => (CHARSET_BINARY, 4, numeric | ColumnFlags::UNSIGNED, 0),
        T::Date | T::NewDate => (CHARSET_BINARY, 10, ColumnFlags::BINARY, 0),
        T::Time | T::Time2 => (CHARSET_BINARY, 10, ColumnFlags::BINARY, 0),
        T::DateTime | T::DateTime2 | T::Timestamp | T::Timestamp2 => {
            (CHARSET_BINARY, 19, ColumnFlags::BINARY, 0)
        }
        T::Bit => (CHARSET_BINARY, 1, ColumnFlags::UNSIGNED, 0),
        T::Null => (CHARSET_BINARY, 0, ColumnFlags::BINARY, 0),
        T::Geometry => (CHARSET_BINARY, 0xFFFF_FFFF, ColumnFlags::BINARY, 0),
        T::TinyBlob => (CHARSET_UTF8MB4_GENERAL_CI, 0xFF, ColumnFlags::BLOB, 0),
        T::Blob => (CHARSET_UTF8MB4_GENERAL_CI, 0xFFFF, ColumnFlags::BLOB, 0),
        T::MediumBlob => (CHARSET_UTF8MB4_GENERAL_CI, 0xFF_FFFF, ColumnFlags::BLOB, 0),
        T::LongBlob | T::Json => (
            CHARSET_UTF8MB4_GENERAL_CI,
            0xFFFF_FFFF,
            ColumnFlags::BLOB,
            0,
        ),
        // VARCHAR(255) in utf8mb4: 255 characters of up to 4 bytes.
        _ => (CHARSET_UTF8MB4_GENERAL_CI, 1020, ColumnFlags::empty(), 0),
    };
    let name = Bytes::copy_from_slice(name.as_bytes());
    ColumnDefinition41 {
        catalog: Bytes::from_static(b"def"),
        schema: Bytes::new(),
        table: Bytes::new(),
        org_table: Bytes::new(),
        org_name: name.clone(),
        name,
        extended_metadata: None,
        character_set: u16::from(character_set),
        column_length,
        column_type,
        flags,
        decimals,
        default_values: None,
    }
}

/// A row of a text-protocol result set (COM_QUERY): one length-encoded
/// string or NULL (`0xFB`) per column.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TextRow {
    pub values: Vec<Option<Bytes>>,
}

impl TextRow {
    pub fn decode(payload: &Bytes, column_count: usize) -> Result<Self, DecodeError> {
        let mut r = Reader::with_context(payload, "TextRow");
        // Each value takes at least one byte, which bounds the allocation.
        let mut values = Vec::with_capacity(column_count.min(payload.len()));
        for _ in 0..column_count {
            values.push(r.lenenc_bytes_or_null()?.map(|v| share(payload, v)));
        }
        r.finish()?;
        Ok(TextRow { values })
    }

    pub fn encode(&self, out: &mut BytesMut) {
        put_text_row(out, self.values.iter().map(|v| v.as_deref()));
    }

    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }
}

fn put_text_row<'a>(out: &mut BytesMut, values: impl Iterator<Item = Option<&'a [u8]>> + Clone) {
    let size: usize = values
        .clone()
        .map(|v| v.map_or(1, |v| lenenc_bytes_len(v.len())))
        .sum();
    out.reserve(size);
    for v in values {
        match v {
            Some(v) => put_lenenc_bytes(out, v),
            None => out.put_u8(NULL_VALUE),
        }
    }
}

/// A row of a binary-protocol result set (COM_STMT_EXECUTE / FETCH).
///
/// Values are kept as raw slices: fixed-width types (integers, floats) as
/// their little-endian bytes, everything else (strings, decimals, temporal
/// values) as the content after its length prefix. `None` is SQL NULL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinaryRow {
    pub values: Vec<Option<Bytes>>,
}

/// The binary row's NULL bitmap starts at bit 2 (bits 0-1 are reserved).
const BINARY_ROW_NULL_OFFSET: usize = 2;

fn null_bitmap_len(columns: usize) -> usize {
    (columns + 7 + BINARY_ROW_NULL_OFFSET) / 8
}

impl BinaryRow {
    pub fn decode(payload: &Bytes, columns: &[ColumnDefinition41]) -> Result<Self, DecodeError> {
        Self::decode_types(payload, columns.iter().map(|c| c.column_type))
    }

    /// Like [`BinaryRow::decode`], from the column types alone.
    pub fn decode_types(
        payload: &Bytes,
        types: impl ExactSizeIterator<Item = ColumnType>,
    ) -> Result<Self, DecodeError> {
        let n = types.len();
        let mut r = Reader::with_context(payload, "BinaryRow header");
        if r.u8()? != BINARY_ROW_HEADER {
            return Err(r.invalid());
        }
        r.set_context("BinaryRow null bitmap");
        let bitmap = r.fixed(null_bitmap_len(n))?;
        // Bits outside the columns' range must be clear, or re-encoding
        // would change the packet.
        for (i, byte) in bitmap.iter().enumerate() {
            for bit in 0..8 {
                let pos = i * 8 + bit;
                let col_bit = pos >= BINARY_ROW_NULL_OFFSET && pos < n + BINARY_ROW_NULL_OFFSET;
                if !col_bit && byte & (1 << bit) != 0 {
                    return Err(r.invalid());
                }
            }
        }
        r.set_context("BinaryRow values");
        let mut values = Vec::with_capacity(n.min(payload.len()));
        for (i, t) in types.enumerate() {
            let pos = i + BINARY_ROW_NULL_OFFSET;
            let is_null = bitmap
                .get(pos / 8)
                .is_some_and(|b| b & (1 << (pos % 8)) != 0);
            if is_null {
                values.push(None);
                continue;
            }
            let v = match t.binary_fixed_len() {
                Some(len) => r.fixed(len)?,
                None => r.lenenc_bytes()?,
            };
            values.push(Some(share(payload, v)));
        }
        r.finish()?;
        Ok(BinaryRow { values })
    }

    /// `columns` must be the result set's columns (their types decide each
    /// value's framing). Values beyond `columns` are ignored; a fixed-width
    /// value is written as given, so it must have the type's width.
    pub fn encode(&self, columns: &[ColumnDefinition41], out: &mut BytesMut) {
        self.encode_types(columns.iter().map(|c| c.column_type), out);
    }

    /// Like [`BinaryRow::encode`], from the column types alone.
    pub fn encode_types(
        &self,
        types: impl ExactSizeIterator<Item = ColumnType>,
        out: &mut BytesMut,
    ) {
        let n = types.len();
        let mut bitmap = vec![0u8; null_bitmap_len(n)];
        for (i, v) in self.values.iter().take(n).enumerate() {
            if v.is_none() {
                let pos = i + BINARY_ROW_NULL_OFFSET;
                if let Some(b) = bitmap.get_mut(pos / 8) {
                    *b |= 1 << (pos % 8);
                }
            }
        }
        out.reserve(
            1 + bitmap.len()
                + self
                    .values
                    .iter()
                    .flatten()
                    .map(|v| v.len() + 9)
                    .sum::<usize>(),
        );
        out.put_u8(BINARY_ROW_HEADER);
        out.put_slice(&bitmap);
        for (t, v) in types.zip(&self.values) {
            if let Some(v) = v {
                if t.binary_fixed_len().is_some() {
                    out.put_slice(v);
                } else {
                    put_lenenc_bytes(out, v);
                }
            }
        }
    }

    pub fn to_bytes(&self, columns: &[ColumnDefinition41]) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(columns, &mut out);
        out.freeze()
    }
}

/// Mistakes a [`RowsWriter`] refuses to turn into packets.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ResultSetError {
    #[error("row has {got} values but the result set has {expected} columns")]
    ColumnCountMismatch { expected: usize, got: usize },
}

/// First step of writing a text result set: the columns.
///
/// ```text
/// ResultSetBuilder::new(columns, deprecate_eof)   // columns fixed here
///     .rows()                                     // column count + defs (+ EOF)
///     .row(..)? .row(..)?                         // rows, arity checked
///     .finish(status)                             // EOF or OK-as-EOF
/// ```
///
/// Each step consumes the previous one, so a result set cannot get rows
/// before its columns or anything after its terminator. The output is
/// payloads only: sequence ids are assigned by the codec's caller.
#[derive(Debug, Clone)]
pub struct ResultSetBuilder {
    columns: Vec<ColumnDefinition41>,
    deprecate_eof: bool,
    /// Status carried by the EOF after the column definitions.
    status: StatusFlags,
}

impl ResultSetBuilder {
    /// `deprecate_eof`: whether `CLIENT_DEPRECATE_EOF` is negotiated with
    /// the client receiving this result set.
    ///
    /// A result set needs at least one column; with none, the writer
    /// produces a plain OK packet instead (which is what a server sends for
    /// a statement without a result set).
    pub fn new(columns: Vec<ColumnDefinition41>, deprecate_eof: bool) -> Self {
        ResultSetBuilder {
            columns,
            deprecate_eof,
            status: StatusFlags::AUTOCOMMIT,
        }
    }

    /// Builder for a client with the given negotiated capabilities: derives
    /// DEPRECATE_EOF, and adds the (empty) MariaDB extended-metadata block
    /// to columns lacking one when the client expects it.
    pub fn for_client(mut columns: Vec<ColumnDefinition41>, capabilities: CapabilityFlags) -> Self {
        if capabilities.contains(CapabilityFlags::MARIADB_CLIENT_EXTENDED_METADATA) {
            for c in &mut columns {
                c.extended_metadata.get_or_insert_with(Bytes::new);
            }
        } else {
            for c in &mut columns {
                c.extended_metadata = None;
            }
        }
        Self::new(
            columns,
            capabilities.contains(CapabilityFlags::DEPRECATE_EOF),
        )
    }

    /// Server status for the EOF that follows the column definitions
    /// (default: autocommit).
    pub fn with_status(mut self, status: StatusFlags) -> Self {
        self.status = status;
        self
    }

    pub fn columns(&self) -> &[ColumnDefinition41] {
        &self.columns
    }

    /// Writes the column count, the definitions and (unless DEPRECATE_EOF)
    /// the EOF, and moves on to the rows.
    pub fn rows(self) -> RowsWriter {
        let mut buf = BytesMut::new();
        let mut packets = Vec::with_capacity(self.columns.len() + 3);
        let column_count = self.columns.len();
        if column_count > 0 {
            put_lenenc_int(&mut buf, column_count as u64);
            packets.push(buf.split().freeze());
            for c in &self.columns {
                c.encode(&mut buf);
                packets.push(buf.split().freeze());
            }
            if !self.deprecate_eof {
                EofPacket::new(0, self.status).encode(&mut buf);
                packets.push(buf.split().freeze());
            }
        }
        RowsWriter {
            packets,
            buf,
            column_count,
            rows: 0,
            deprecate_eof: self.deprecate_eof,
        }
    }
}

/// Second step: rows, then the terminator. See [`ResultSetBuilder`].
#[derive(Debug)]
pub struct RowsWriter {
    packets: Vec<Bytes>,
    /// Packets are written here and split off, so they share allocations.
    buf: BytesMut,
    column_count: usize,
    rows: usize,
    deprecate_eof: bool,
}

impl RowsWriter {
    /// Appends a text row; `None` is SQL NULL. The number of values must
    /// match the number of columns.
    pub fn row(&mut self, values: &[Option<&[u8]>]) -> Result<&mut Self, ResultSetError> {
        if values.len() != self.column_count || self.column_count == 0 {
            return Err(ResultSetError::ColumnCountMismatch {
                expected: self.column_count,
                got: values.len(),
            });
        }
        put_text_row(&mut self.buf, values.iter().copied());
        self.packets.push(self.buf.split().freeze());
        self.rows += 1;
        Ok(self)
    }

    /// Appends a row given as strings (convenience for admin output).
    pub fn row_str(&mut self, values: &[Option<&str>]) -> Result<&mut Self, ResultSetError> {
        if values.len() != self.column_count || self.column_count == 0 {
            return Err(ResultSetError::ColumnCountMismatch {
                expected: self.column_count,
                got: values.len(),
            });
        }
        put_text_row(&mut self.buf, values.iter().map(|v| v.map(str::as_bytes)));
        self.packets.push(self.buf.split().freeze());
        self.rows += 1;
        Ok(self)
    }

    /// Rows written so far.
    pub fn row_count(&self) -> usize {
        self.rows
    }

    /// Ends the result set with an EOF, or with the `0xFE` OK under
    /// DEPRECATE_EOF, carrying `status`. Returns every payload in order.
    pub fn finish(self, status: StatusFlags) -> Vec<Bytes> {
        self.finish_with_warnings(status, 0)
    }

    pub fn finish_with_warnings(mut self, status: StatusFlags, warnings: u16) -> Vec<Bytes> {
        // The terminator must not claim more results: nothing follows it.
        let mut status = status;
        status.remove(StatusFlags::MORE_RESULTS_EXISTS);
        if self.column_count == 0 {
            OkPacket::new(0, 0, status, warnings)
                .encode(CapabilityFlags::PROTOCOL_41, &mut self.buf);
        } else if self.deprecate_eof {
            OkPacket::end_of_rows(status, warnings)
                .encode(CapabilityFlags::PROTOCOL_41, &mut self.buf);
        } else {
            EofPacket::new(warnings, status).encode(&mut self.buf);
        }
        self.packets.push(self.buf.split().freeze());
        self.packets
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tracker::{ResponseTracker, Step};

    /// `SELECT id, name FROM test.t` column as MariaDB sends it.
    fn wire_column() -> Vec<u8> {
        let mut v = b"\x03def\x04test\x01t\x01t\x02id\x02id".to_vec();
        v.extend_from_slice(&[
            0x0c, 0x3f, 0x00, 0x0b, 0, 0, 0, 0x03, 0x03, 0x42, 0x00, 0, 0,
        ]);
        v
    }

    #[test]
    fn column_definition_round_trip() {
        let wire = Bytes::from(wire_column());
        let c = ColumnDefinition41::decode(&wire, CapabilityFlags::PROTOCOL_41).unwrap();
        assert_eq!(&c.name[..], b"id");
        assert_eq!(c.column_type, ColumnType::Long);
        assert_eq!(c.character_set, 63);
        assert_eq!(c.column_length, 11);
        assert!(c
            .flags
            .contains(ColumnFlags::NOT_NULL | ColumnFlags::PRI_KEY));
        assert_eq!(c.to_bytes(), wire);

        // COM_FIELD_LIST default value trailer.
        let mut fl = wire_column();
        fl.extend_from_slice(b"\x011");
        let fl = Bytes::from(fl);
        let c = ColumnDefinition41::decode(&fl, CapabilityFlags::PROTOCOL_41).unwrap();
        assert_eq!(c.default_values.as_deref(), Some(&b"\x011"[..]));
        assert_eq!(c.to_bytes(), fl);

        // MariaDB extended metadata (json format hint).
        let mut ext = b"\x03def\x00\x00\x00\x01j\x00".to_vec();
        ext.extend_from_slice(b"\x06\x01\x04json");
        ext.extend_from_slice(&[0x0c, 45, 0, 0xff, 0xff, 0xff, 0xff, 252, 0x10, 0, 0, 0, 0]);
        let ext = Bytes::from(ext);
        let caps = CapabilityFlags::MARIADB_CLIENT_EXTENDED_METADATA;
        let c = ColumnDefinition41::decode(&ext, caps).unwrap();
        assert_eq!(c.extended_metadata.as_deref(), Some(&b"\x01\x04json"[..]));
        assert_eq!(c.column_type, ColumnType::Blob);
        assert_eq!(c.to_bytes(), ext);

        // Bad fixed length / filler / type.
        for (i, b) in [(19, 0x0b), (30, 1), (26, 100)] {
            let mut bad = wire_column();
            bad[i] = b;
            assert!(ColumnDefinition41::decode(&Bytes::from(bad), CapabilityFlags(0)).is_err());
        }
    }

    #[test]
    fn text_rows() {
        let wire = Bytes::from_static(b"\x011\xfb\x05hello");
        let r = TextRow::decode(&wire, 3).unwrap();
        assert_eq!(
            r.values,
            vec![
                Some(Bytes::from_static(b"1")),
                None,
                Some(Bytes::from_static(b"hello"))
            ]
        );
        assert_eq!(r.to_bytes(), wire);
        assert!(TextRow::decode(&wire, 2).is_err());
        assert!(TextRow::decode(&wire, 4).is_err());
        assert_eq!(
            TextRow::decode(&Bytes::new(), 0).unwrap(),
            TextRow::default()
        );
    }

    #[test]
    fn binary_rows() {
        let types = [
            ColumnType::Long,
            ColumnType::VarString,
            ColumnType::LongLong,
            ColumnType::DateTime,
        ];
        let cols: Vec<_> = types.iter().map(|t| simple_column("c", *t)).collect();
        // id=7, name='ab', big NULL, datetime 2024-01-02 (4-byte form).
        let wire = Bytes::from_static(b"\x00\x10\x07\x00\x00\x00\x02ab\x04\xe8\x07\x01\x02");
        let r = BinaryRow::decode(&wire, &cols).unwrap();
        assert_eq!(r.values[0].as_deref(), Some(&[7u8, 0, 0, 0][..]));
        assert_eq!(r.values[1].as_deref(), Some(&b"ab"[..]));
        assert_eq!(r.values[2], None);
        assert_eq!(r.values[3].as_deref(), Some(&[0xe8, 0x07, 1, 2][..]));
        assert_eq!(r.to_bytes(&cols), wire);
        // Reserved bitmap bits set: rejected.
        let bad = Bytes::from_static(b"\x00\x11\x07\x00\x00\x00\x02ab\x04\xe8\x07\x01\x02");
        assert!(BinaryRow::decode(&bad, &cols).is_err());
        // Truncated.
        assert!(BinaryRow::decode(&wire.slice(..wire.len() - 1), &cols).is_err());
    }

    #[test]
    fn builder_output_is_tracked_as_complete() {
        for deprecate in [false, true] {
            let cols = vec![
                simple_column("Variable_name", ColumnType::VarString),
                simple_column("Value", ColumnType::LongLong),
            ];
            let mut w = ResultSetBuilder::new(cols.clone(), deprecate).rows();
            w.row(&[Some(&b"questions"[..]), Some(&b"42"[..])])
                .unwrap()
                .row(&[Some(&b"nothing"[..]), None])
                .unwrap();
            assert!(matches!(
                w.row(&[Some(&b"x"[..])]),
                Err(ResultSetError::ColumnCountMismatch {
                    expected: 2,
                    got: 1
                })
            ));
            assert_eq!(w.row_count(), 2);
            let packets = w.finish(StatusFlags::AUTOCOMMIT);
            assert_eq!(packets.len(), if deprecate { 6 } else { 7 });
            assert_eq!(&packets[0][..], &[2]);
            assert_eq!(
                ColumnDefinition41::decode(&packets[1], CapabilityFlags(0)).unwrap(),
                cols[0]
            );
            let row = TextRow::decode(&packets[packets.len() - 2], 2).unwrap();
            assert_eq!(row.values[1], None);

            let mut caps = CapabilityFlags::PROTOCOL_41;
            caps.set(CapabilityFlags::DEPRECATE_EOF, deprecate);
            let mut t = ResponseTracker::new(3, caps);
            let steps: Vec<_> = packets
                .iter()
                .map(|p| t.on_server_packet(p.len(), &p[..p.len().min(32)]).unwrap())
                .collect();
            assert_eq!(steps.last(), Some(&Step::Done));
            assert!(steps[..steps.len() - 1].iter().all(|s| *s == Step::More));
            assert_eq!(t.last_status(), StatusFlags::AUTOCOMMIT);
        }
    }

    #[test]
    fn builder_without_columns_is_an_ok() {
        let mut w = ResultSetBuilder::new(Vec::new(), false).rows();
        assert!(w.row(&[]).is_err());
        let packets = w.finish(StatusFlags::AUTOCOMMIT);
        assert_eq!(packets.len(), 1);
        let ok = OkPacket::decode(&packets[0], CapabilityFlags::PROTOCOL_41).unwrap();
        assert_eq!(ok.status, StatusFlags::AUTOCOMMIT);
    }

    #[test]
    fn builder_for_mariadb_client() {
        let caps = CapabilityFlags::PROTOCOL_41
            | CapabilityFlags::DEPRECATE_EOF
            | CapabilityFlags::MARIADB_CLIENT_EXTENDED_METADATA;
        let b = ResultSetBuilder::for_client(vec![simple_column("a", ColumnType::Tiny)], caps);
        let mut w = b.rows();
        w.row_str(&[Some("1")]).unwrap();
        let packets = w.finish(StatusFlags::empty());
        assert_eq!(packets.len(), 4);
        let c = ColumnDefinition41::decode(&packets[1], caps).unwrap();
        assert_eq!(c.extended_metadata, Some(Bytes::new()));
        assert_eq!(&packets[3][..], &[0xFE, 0, 0, 0, 0, 0, 0]);
    }
}
