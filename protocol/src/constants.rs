//! Protocol constants: command codes, capability/status/column flags, column
//! types, character sets and the header bytes that identify generic packets.
//!
//! Values follow MySQL's `include/my_command.h`, `mysql_com.h`,
//! `field_types.h` and MariaDB's `mysql_com.h` (the MariaDB-only extensions
//! are named `MARIADB_*`).

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not};

/// First payload byte of an OK packet.
pub const OK_HEADER: u8 = 0x00;
/// First payload byte of an EOF packet (and of the DEPRECATE_EOF OK form).
pub const EOF_HEADER: u8 = 0xFE;
/// First payload byte of an ERR packet.
pub const ERR_HEADER: u8 = 0xFF;
/// First payload byte of a LOCAL INFILE request (`LOAD DATA LOCAL`).
pub const LOCAL_INFILE_HEADER: u8 = 0xFB;
/// First payload byte of an AuthMoreData packet.
pub const AUTH_MORE_DATA_HEADER: u8 = 0x01;
/// First payload byte of an AuthSwitchRequest (same value as EOF).
pub const AUTH_SWITCH_HEADER: u8 = 0xFE;
/// Marker of a NULL value in a text row (and invalid as a length prefix).
pub const NULL_VALUE: u8 = 0xFB;
/// First payload byte of a binary-protocol result row (same value as OK).
pub const BINARY_ROW_HEADER: u8 = 0x00;

/// COM_SET_OPTION's argument turning multi-statements on
/// (`enum_mysql_set_option` in `mysql_com.h`).
pub const MYSQL_OPTION_MULTI_STATEMENTS_ON: u16 = 0;
/// COM_SET_OPTION's argument turning multi-statements off.
pub const MYSQL_OPTION_MULTI_STATEMENTS_OFF: u16 = 1;

/// `latin1_swedish_ci`, the historical default collation.
pub const CHARSET_LATIN1_SWEDISH_CI: u8 = 8;
/// `utf8mb3_general_ci` (a.k.a. `utf8_general_ci`).
pub const CHARSET_UTF8_GENERAL_CI: u8 = 33;
/// `utf8mb4_general_ci`.
pub const CHARSET_UTF8MB4_GENERAL_CI: u8 = 45;
/// `binary`.
pub const CHARSET_BINARY: u8 = 63;

/// Client command codes (first byte of every command-phase packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    Sleep = 0,
    Quit = 1,
    InitDb = 2,
    Query = 3,
    FieldList = 4,
    CreateDb = 5,
    DropDb = 6,
    Refresh = 7,
    Shutdown = 8,
    Statistics = 9,
    ProcessInfo = 10,
    Connect = 11,
    ProcessKill = 12,
    Debug = 13,
    Ping = 14,
    Time = 15,
    DelayedInsert = 16,
    ChangeUser = 17,
    BinlogDump = 18,
    TableDump = 19,
    ConnectOut = 20,
    RegisterSlave = 21,
    StmtPrepare = 22,
    StmtExecute = 23,
    StmtSendLongData = 24,
    StmtClose = 25,
    StmtReset = 26,
    SetOption = 27,
    StmtFetch = 28,
    Daemon = 29,
    BinlogDumpGtid = 30,
    ResetConnection = 31,
    /// MySQL 8.0.23+ `COM_CLONE` (clone plugin).
    Clone = 32,
    /// MySQL 8.0.33+ `COM_SUBSCRIBE_GROUP_REPLICATION_STREAM`.
    SubscribeGroupReplicationStream = 33,
    /// MariaDB `COM_STMT_BULK_EXECUTE`.
    StmtBulkExecute = 250,
    /// MariaDB `COM_SLAVE_WORKER` (internal, never sent by clients).
    SlaveWorker = 251,
    /// MariaDB `COM_SLAVE_IO` (internal).
    SlaveIo = 252,
    /// MariaDB `COM_SLAVE_SQL` (internal).
    SlaveSql = 253,
    /// MariaDB `COM_MULTI` (removed in 10.6, kept for decoding).
    Multi = 254,
}

impl Command {
    /// Maps a command byte to a known command.
    pub fn from_u8(b: u8) -> Option<Command> {
        use Command::*;
        Some(match b {
            0 => Sleep,
            1 => Quit,
            2 => InitDb,
            3 => Query,
            4 => FieldList,
            5 => CreateDb,
            6 => DropDb,
            7 => Refresh,
            8 => Shutdown,
            9 => Statistics,
            10 => ProcessInfo,
            11 => Connect,
            12 => ProcessKill,
            13 => Debug,
            14 => Ping,
            15 => Time,
            16 => DelayedInsert,
            17 => ChangeUser,
            18 => BinlogDump,
            19 => TableDump,
            20 => ConnectOut,
            21 => RegisterSlave,
            22 => StmtPrepare,
            23 => StmtExecute,
            24 => StmtSendLongData,
            25 => StmtClose,
            26 => StmtReset,
            27 => SetOption,
            28 => StmtFetch,
            29 => Daemon,
            30 => BinlogDumpGtid,
            31 => ResetConnection,
            32 => Clone,
            33 => SubscribeGroupReplicationStream,
            250 => StmtBulkExecute,
            251 => SlaveWorker,
            252 => SlaveIo,
            253 => SlaveSql,
            254 => Multi,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The server-side name, as shown in `SHOW STATUS` (`COM_QUERY`, ...).
    pub fn name(&self) -> &'static str {
        use Command::*;
        match self {
            Sleep => "COM_SLEEP",
            Quit => "COM_QUIT",
            InitDb => "COM_INIT_DB",
            Query => "COM_QUERY",
            FieldList => "COM_FIELD_LIST",
            CreateDb => "COM_CREATE_DB",
            DropDb => "COM_DROP_DB",
            Refresh => "COM_REFRESH",
            Shutdown => "COM_SHUTDOWN",
            Statistics => "COM_STATISTICS",
            ProcessInfo => "COM_PROCESS_INFO",
            Connect => "COM_CONNECT",
            ProcessKill => "COM_PROCESS_KILL",
            Debug => "COM_DEBUG",
            Ping => "COM_PING",
            Time => "COM_TIME",
            DelayedInsert => "COM_DELAYED_INSERT",
            ChangeUser => "COM_CHANGE_USER",
            BinlogDump => "COM_BINLOG_DUMP",
            TableDump => "COM_TABLE_DUMP",
            ConnectOut => "COM_CONNECT_OUT",
            RegisterSlave => "COM_REGISTER_SLAVE",
            StmtPrepare => "COM_STMT_PREPARE",
            StmtExecute => "COM_STMT_EXECUTE",
            StmtSendLongData => "COM_STMT_SEND_LONG_DATA",
            StmtClose => "COM_STMT_CLOSE",
            StmtReset => "COM_STMT_RESET",
            SetOption => "COM_SET_OPTION",
            StmtFetch => "COM_STMT_FETCH",
            Daemon => "COM_DAEMON",
            BinlogDumpGtid => "COM_BINLOG_DUMP_GTID",
            ResetConnection => "COM_RESET_CONNECTION",
            Clone => "COM_CLONE",
            SubscribeGroupReplicationStream => "COM_SUBSCRIBE_GROUP_REPLICATION_STREAM",
            StmtBulkExecute => "COM_STMT_BULK_EXECUTE",
            SlaveWorker => "COM_SLAVE_WORKER",
            SlaveIo => "COM_SLAVE_IO",
            SlaveSql => "COM_SLAVE_SQL",
            Multi => "COM_MULTI",
        }
    }
}

impl From<Command> for u8 {
    fn from(c: Command) -> u8 {
        c as u8
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Implements the set operations shared by the flag newtypes.
macro_rules! flag_set {
    ($name:ident, $int:ty) => {
        impl $name {
            pub const fn empty() -> Self {
                $name(0)
            }
            pub const fn bits(self) -> $int {
                self.0
            }
            pub const fn from_bits(bits: $int) -> Self {
                $name(bits)
            }
            /// True if every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
            /// True if any bit of `other` is set in `self`.
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }
            pub fn insert(&mut self, other: Self) {
                self.0 |= other.0;
            }
            pub fn remove(&mut self, other: Self) {
                self.0 &= !other.0;
            }
            pub fn set(&mut self, other: Self, on: bool) {
                if on {
                    self.insert(other)
                } else {
                    self.remove(other)
                }
            }
            pub const fn intersection(self, other: Self) -> Self {
                $name(self.0 & other.0)
            }
            pub const fn union(self, other: Self) -> Self {
                $name(self.0 | other.0)
            }
            pub const fn difference(self, other: Self) -> Self {
                $name(self.0 & !other.0)
            }
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }
        }
        impl BitOr for $name {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                $name(self.0 | rhs.0)
            }
        }
        impl BitAnd for $name {
            type Output = Self;
            fn bitand(self, rhs: Self) -> Self {
                $name(self.0 & rhs.0)
            }
        }
        impl BitOrAssign for $name {
            fn bitor_assign(&mut self, rhs: Self) {
                self.0 |= rhs.0;
            }
        }
        impl BitAndAssign for $name {
            fn bitand_assign(&mut self, rhs: Self) {
                self.0 &= rhs.0;
            }
        }
        impl Not for $name {
            type Output = Self;
            fn not(self) -> Self {
                $name(!self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }
    };
}

/// Client/server capability flags (`CLIENT_*`), widened to 64 bits so that
/// MariaDB's extended capabilities (`MARIADB_CLIENT_*`, sent in otherwise
/// reserved bytes of the handshake) fit in the upper half.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapabilityFlags(pub u64);

flag_set!(CapabilityFlags, u64);

impl CapabilityFlags {
    pub const LONG_PASSWORD: Self = Self(1);
    /// MariaDB's name for bit 0: a MariaDB server *clears* it to announce
    /// that extended capabilities are present in the handshake.
    pub const CLIENT_MYSQL: Self = Self(1);
    pub const FOUND_ROWS: Self = Self(1 << 1);
    pub const LONG_FLAG: Self = Self(1 << 2);
    pub const CONNECT_WITH_DB: Self = Self(1 << 3);
    pub const NO_SCHEMA: Self = Self(1 << 4);
    pub const COMPRESS: Self = Self(1 << 5);
    pub const ODBC: Self = Self(1 << 6);
    pub const LOCAL_FILES: Self = Self(1 << 7);
    pub const IGNORE_SPACE: Self = Self(1 << 8);
    pub const PROTOCOL_41: Self = Self(1 << 9);
    pub const INTERACTIVE: Self = Self(1 << 10);
    pub const SSL: Self = Self(1 << 11);
    pub const IGNORE_SIGPIPE: Self = Self(1 << 12);
    pub const TRANSACTIONS: Self = Self(1 << 13);
    pub const RESERVED: Self = Self(1 << 14);
    /// a.k.a. `CLIENT_RESERVED2`: 4.1 authentication.
    pub const SECURE_CONNECTION: Self = Self(1 << 15);
    pub const MULTI_STATEMENTS: Self = Self(1 << 16);
    pub const MULTI_RESULTS: Self = Self(1 << 17);
    pub const PS_MULTI_RESULTS: Self = Self(1 << 18);
    pub const PLUGIN_AUTH: Self = Self(1 << 19);
    pub const CONNECT_ATTRS: Self = Self(1 << 20);
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: Self = Self(1 << 21);
    pub const CAN_HANDLE_EXPIRED_PASSWORDS: Self = Self(1 << 22);
    pub const SESSION_TRACK: Self = Self(1 << 23);
    pub const DEPRECATE_EOF: Self = Self(1 << 24);
    pub const OPTIONAL_RESULTSET_METADATA: Self = Self(1 << 25);
    pub const ZSTD_COMPRESSION: Self = Self(1 << 26);
    pub const QUERY_ATTRIBUTES: Self = Self(1 << 27);
    pub const MULTI_FACTOR_AUTHENTICATION: Self = Self(1 << 28);
    pub const CAPABILITY_EXTENSION: Self = Self(1 << 29);
    pub const SSL_VERIFY_SERVER_CERT: Self = Self(1 << 30);
    pub const REMEMBER_OPTIONS: Self = Self(1 << 31);
    pub const MARIADB_CLIENT_PROGRESS: Self = Self(1 << 32);
    pub const MARIADB_CLIENT_COM_MULTI: Self = Self(1 << 33);
    pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: Self = Self(1 << 34);
    /// `MARIADB_CLIENT_EXTENDED_TYPE_INFO` in recent MariaDB headers.
    pub const MARIADB_CLIENT_EXTENDED_METADATA: Self = Self(1 << 35);
    pub const MARIADB_CLIENT_CACHE_METADATA: Self = Self(1 << 36);
    pub const MARIADB_CLIENT_BULK_UNIT_RESULTS: Self = Self(1 << 37);

    /// The 32 bits that travel in the classic capability fields.
    pub const fn lower32(self) -> u32 {
        self.0 as u32
    }

    /// MariaDB's extended capabilities (bits 32..64), as sent on the wire.
    pub const fn upper32(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub const fn from_parts(lower: u32, upper: u32) -> Self {
        Self(lower as u64 | (upper as u64) << 32)
    }
}

/// Server status flags (`SERVER_STATUS_*`, `SERVER_*`) from OK/EOF packets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusFlags(pub u16);

flag_set!(StatusFlags, u16);

impl StatusFlags {
    pub const IN_TRANS: Self = Self(1);
    pub const AUTOCOMMIT: Self = Self(2);
    pub const MORE_RESULTS_EXISTS: Self = Self(8);
    pub const NO_GOOD_INDEX_USED: Self = Self(0x10);
    pub const NO_INDEX_USED: Self = Self(0x20);
    pub const CURSOR_EXISTS: Self = Self(0x40);
    pub const LAST_ROW_SENT: Self = Self(0x80);
    pub const DB_DROPPED: Self = Self(0x100);
    pub const NO_BACKSLASH_ESCAPES: Self = Self(0x200);
    pub const METADATA_CHANGED: Self = Self(0x400);
    pub const QUERY_WAS_SLOW: Self = Self(0x800);
    pub const PS_OUT_PARAMS: Self = Self(0x1000);
    pub const IN_TRANS_READONLY: Self = Self(0x2000);
    pub const SESSION_STATE_CHANGED: Self = Self(0x4000);
}

/// Column definition flags (`*_FLAG` in `mysql_com.h`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ColumnFlags(pub u16);

flag_set!(ColumnFlags, u16);

impl ColumnFlags {
    pub const NOT_NULL: Self = Self(1);
    pub const PRI_KEY: Self = Self(2);
    pub const UNIQUE_KEY: Self = Self(4);
    pub const MULTIPLE_KEY: Self = Self(8);
    pub const BLOB: Self = Self(16);
    pub const UNSIGNED: Self = Self(32);
    pub const ZEROFILL: Self = Self(64);
    pub const BINARY: Self = Self(128);
    pub const ENUM: Self = Self(256);
    pub const AUTO_INCREMENT: Self = Self(512);
    pub const TIMESTAMP: Self = Self(1024);
    pub const SET: Self = Self(2048);
    pub const NO_DEFAULT_VALUE: Self = Self(4096);
    pub const ON_UPDATE_NOW: Self = Self(8192);
    pub const PART_KEY: Self = Self(16384);
    pub const NUM: Self = Self(32768);
}

/// Column types (`enum_field_types`).
///
/// The variants use Rust naming; the `MYSQL_TYPE_*`-style associated
/// constants (`ColumnType::VAR_STRING`, ...) are aliases for readers coming
/// from the C headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ColumnType {
    Decimal = 0,
    Tiny = 1,
    Short = 2,
    Long = 3,
    Float = 4,
    Double = 5,
    Null = 6,
    Timestamp = 7,
    LongLong = 8,
    Int24 = 9,
    Date = 10,
    Time = 11,
    DateTime = 12,
    Year = 13,
    NewDate = 14,
    VarChar = 15,
    Bit = 16,
    Timestamp2 = 17,
    DateTime2 = 18,
    Time2 = 19,
    /// MySQL 8 replication-only type.
    TypedArray = 20,
    /// MySQL 9 `VECTOR`.
    Vector = 242,
    /// MySQL internal marker (`MYSQL_TYPE_INVALID`).
    Invalid = 243,
    /// MySQL placeholder (`MYSQL_TYPE_BOOL`), never sent by current servers.
    Bool = 244,
    Json = 245,
    NewDecimal = 246,
    Enum = 247,
    Set = 248,
    TinyBlob = 249,
    MediumBlob = 250,
    LongBlob = 251,
    Blob = 252,
    VarString = 253,
    String = 254,
    Geometry = 255,
}

#[allow(non_upper_case_globals)]
impl ColumnType {
    pub const DECIMAL: Self = Self::Decimal;
    pub const TINY: Self = Self::Tiny;
    pub const SHORT: Self = Self::Short;
    pub const LONG: Self = Self::Long;
    pub const FLOAT: Self = Self::Float;
    pub const DOUBLE: Self = Self::Double;
    pub const NULL: Self = Self::Null;
    pub const TIMESTAMP: Self = Self::Timestamp;
    pub const LONGLONG: Self = Self::LongLong;
    pub const INT24: Self = Self::Int24;
    pub const DATE: Self = Self::Date;
    pub const TIME: Self = Self::Time;
    pub const DATETIME: Self = Self::DateTime;
    pub const YEAR: Self = Self::Year;
    pub const NEWDATE: Self = Self::NewDate;
    pub const VARCHAR: Self = Self::VarChar;
    pub const BIT: Self = Self::Bit;
    pub const TIMESTAMP2: Self = Self::Timestamp2;
    pub const DATETIME2: Self = Self::DateTime2;
    pub const TIME2: Self = Self::Time2;
    pub const TYPED_ARRAY: Self = Self::TypedArray;
    pub const VECTOR: Self = Self::Vector;
    pub const INVALID: Self = Self::Invalid;
    pub const BOOL: Self = Self::Bool;
    pub const JSON: Self = Self::Json;
    pub const NEWDECIMAL: Self = Self::NewDecimal;
    pub const ENUM: Self = Self::Enum;
    pub const SET: Self = Self::Set;
    pub const TINY_BLOB: Self = Self::TinyBlob;
    pub const MEDIUM_BLOB: Self = Self::MediumBlob;
    pub const LONG_BLOB: Self = Self::LongBlob;
    pub const BLOB: Self = Self::Blob;
    pub const VAR_STRING: Self = Self::VarString;
    pub const STRING: Self = Self::String;
    pub const GEOMETRY: Self = Self::Geometry;

    pub fn from_u8(b: u8) -> Option<ColumnType> {
        use ColumnType::*;
        Some(match b {
            0 => Decimal,
            1 => Tiny,
            2 => Short,
            3 => Long,
            4 => Float,
            5 => Double,
            6 => Null,
            7 => Timestamp,
            8 => LongLong,
            9 => Int24,
            10 => Date,
            11 => Time,
            12 => DateTime,
            13 => Year,
            14 => NewDate,
            15 => VarChar,
            16 => Bit,
            17 => Timestamp2,
            18 => DateTime2,
            19 => Time2,
            20 => TypedArray,
            242 => Vector,
            243 => Invalid,
            244 => Bool,
            245 => Json,
            246 => NewDecimal,
            247 => Enum,
            248 => Set,
            249 => TinyBlob,
            250 => MediumBlob,
            251 => LongBlob,
            252 => Blob,
            253 => VarString,
            254 => String,
            255 => Geometry,
            _ => return None,
        })
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Size of a value of this type in the binary protocol when it has a
    /// fixed width; `None` for length-encoded values (strings, decimals,
    /// blobs, temporal types, which carry their own length byte).
    pub fn binary_fixed_len(self) -> Option<usize> {
        use ColumnType::*;
        match self {
            Tiny => Some(1),
            Short | Year => Some(2),
            Long | Int24 | Float => Some(4),
            LongLong | Double => Some(8),
            Null => Some(0),
            _ => None,
        }
    }
}

impl From<ColumnType> for u8 {
    fn from(t: ColumnType) -> u8 {
        t as u8
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn command_codes_round_trip() {
        for b in 0..=255u8 {
            if let Some(c) = Command::from_u8(b) {
                assert_eq!(c.as_u8(), b);
                assert!(c.name().starts_with("COM_"));
            }
        }
        assert_eq!(Command::from_u8(3), Some(Command::Query));
        assert_eq!(Command::Query.name(), "COM_QUERY");
        assert_eq!(Command::StmtBulkExecute as u8, 250);
        assert_eq!(Command::ResetConnection as u8, 31);
        assert_eq!(Command::from_u8(40), None);
    }

    #[test]
    fn column_types_round_trip() {
        let mut known = 0;
        for b in 0..=255u8 {
            if let Some(t) = ColumnType::from_u8(b) {
                assert_eq!(t.as_u8(), b);
                known += 1;
            }
        }
        assert_eq!(known, 21 + 14);
        assert_eq!(ColumnType::JSON as u8, 245);
        assert_eq!(ColumnType::VAR_STRING, ColumnType::VarString);
    }

    #[test]
    fn flag_ops() {
        let mut c = CapabilityFlags::PROTOCOL_41 | CapabilityFlags::SSL;
        assert!(c.contains(CapabilityFlags::SSL));
        c.remove(CapabilityFlags::SSL | CapabilityFlags::MARIADB_CLIENT_PROGRESS);
        assert_eq!(c, CapabilityFlags::PROTOCOL_41);
        c.insert(CapabilityFlags::MARIADB_CLIENT_CACHE_METADATA);
        assert_eq!(c.upper32(), 1 << 4);
        assert_eq!(c.lower32(), 1 << 9);
        assert_eq!(CapabilityFlags::from_parts(c.lower32(), c.upper32()), c);
        assert_eq!(
            (c & CapabilityFlags::PROTOCOL_41),
            c.intersection(CapabilityFlags::PROTOCOL_41)
        );
        assert_eq!(CapabilityFlags::REMEMBER_OPTIONS.0, 1 << 31);
        assert_eq!(CapabilityFlags::SSL_VERIFY_SERVER_CERT.0, 1 << 30);
        let s = StatusFlags::IN_TRANS | StatusFlags::MORE_RESULTS_EXISTS;
        assert!(s.contains(StatusFlags::MORE_RESULTS_EXISTS));
        assert!(!s.contains(StatusFlags::AUTOCOMMIT));
        assert_eq!(StatusFlags::SESSION_STATE_CHANGED.0, 0x4000);
        assert_eq!(ColumnFlags::NUM.0, 32768);
    }
}
