//! The SQL tokenizer of MySQL Proxy 0.8's `mysql.tokenizer` Lua module, and
//! the query fingerprint (`normalize`) that its `proxy.tokenizer` library
//! computes from the tokens.
//!
//! Scripts see each token as `.text`, `.token_id` and `.token_name`; this
//! module produces exactly those three things, which the Lua binding
//! (`modules/tokenizer.rs`) wraps.
//!
//! The lexer is byte oriented (queries are not always valid UTF-8, and Lua
//! strings are bytes), and every rule matches ASCII only, so each byte of a
//! multi-byte character outside quotes is a [`TokenId::Unknown`] token of its
//! own, as in MySQL Proxy 0.8. Summary of the rules:
//!
//! * Whitespace (space, tab, newline, vertical tab, form feed, carriage
//!   return) separates tokens and is dropped.
//! * `/* … */` is a [`TokenId::Comment`] and `/*! … */` a
//!   [`TokenId::CommentMysql`], both holding the text between the markers;
//!   `-- ` or `--<tab>` starts a comment running to the end of the line, and
//!   `--` directly followed by a line break is an empty comment. `#` does not
//!   start a comment, and neither does `--` followed by anything else (that is
//!   two minus signs). Unterminated comments run to the end of the query.
//! * `'…'` and `"…"` are [`TokenId::String`], `` `…` `` is a
//!   [`TokenId::Literal`]; the text is what lies between the quotes, with
//!   backslash escapes kept as written and the opening quote character, when
//!   doubled, reduced to one.
//! * Numbers: [`TokenId::Integer`] for digits, [`TokenId::Float`] for
//!   `1.5`, `.5` and the scientific forms `1e+1`, `1.1e1`, `.1e+1`. Like
//!   MySQL Proxy 0.8, there is no hexadecimal or bit-value number: `0x1F`
//!   and `1e5` (no sign, no dot) are words, `x'1F'` a word and a string.
//! * Words (`[0-9]*[A-Za-z_@][A-Za-z0-9_@]*`, up to three joined by dots) are
//!   keywords if they are in the keyword list, else literals; a word directly
//!   followed by `(` is a [`TokenId::Function`].
//! * Operators and punctuation have a token each; anything else is
//!   [`TokenId::Unknown`].

use std::fmt;

/// A token as a Lua script sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What kind of token this is (`token.token_id`, `token.token_name`).
    pub id: TokenId,
    /// `token.text`: the token as written in the query, except that strings,
    /// quoted literals and comments hold only their content (no quotes, no
    /// comment markers) and functions hold their name without the `(`.
    /// Bytes, not `String`: a query may carry any bytes inside its strings.
    pub text: Vec<u8>,
}

impl Token {
    /// Builds a token from its kind and text.
    pub fn new(id: TokenId, text: impl Into<Vec<u8>>) -> Self {
        Self {
            id,
            text: text.into(),
        }
    }

    /// `token.token_name`, e.g. `TK_SQL_SELECT`.
    pub fn name(&self) -> &'static str {
        self.id.name()
    }
}

/// Declares [`TokenId`] from the token table, so that the variant order (the
/// numbers scripts see), the `TK_*` names and the keyword spellings all come
/// from one list.
macro_rules! token_ids {
    (
        before_keywords {
            $( $(#[$before_doc:meta])* $before:ident = $before_name:literal, )*
        }
        keywords {
            $( $keyword:ident = $keyword_text:literal, )*
        }
        after_keywords {
            $( $(#[$after_doc:meta])* $after:ident = $after_name:literal, )*
        }
    ) => {
        /// The kind of a token. The discriminant is the `token_id` scripts see
        /// (MySQL Proxy 0.8's numbering), [`TokenId::name`] the `token_name`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum TokenId {
            $( $(#[$before_doc])* $before, )*
            $( #[doc = concat!("The keyword `", $keyword_text, "`.")] $keyword, )*
            $( $(#[$after_doc])* $after, )*
        }

        impl TokenId {
            /// Every token kind in `token_id` order (`ALL[n].number() == n`).
            /// (MySQL Proxy 0.8's C module exported no `TK_*` constants, so
            /// the Lua module does not either.)
            pub const ALL: &'static [TokenId] = &[
                $( Self::$before, )*
                $( Self::$keyword, )*
                $( Self::$after, )*
            ];

            /// The `token_name` scripts see, e.g. `TK_SQL_SELECT`.
            pub fn name(self) -> &'static str {
                match self {
                    $( Self::$before => $before_name, )*
                    $( Self::$keyword => concat!("TK_SQL_", $keyword_text), )*
                    $( Self::$after => $after_name, )*
                }
            }

            /// The keyword token spelt `word`, which must be upper case.
            fn keyword_from_uppercase(word: &str) -> Option<Self> {
                match word {
                    $( $keyword_text => Some(Self::$keyword), )*
                    _ => None,
                }
            }
        }
    };
}

token_ids! {
    before_keywords {
        /// A byte no other rule accepts (`#`, `%`, `?`, `!`, non-ASCII, ...).
        Unknown = "TK_UNKNOWN",
        /// `<=`
        Le = "TK_LE",
        /// `>=`
        Ge = "TK_GE",
        /// `<`
        Lt = "TK_LT",
        /// `>`
        Gt = "TK_GT",
        /// `=`
        Eq = "TK_EQ",
        /// `<>` or `!=`
        Ne = "TK_NE",
        /// A `'…'` or `"…"` string; the text is its content.
        String = "TK_STRING",
        /// A `/* … */` or `-- …` comment; the text is its content.
        Comment = "TK_COMMENT",
        /// A name that is not a keyword, or a `` `…` `` quoted name.
        Literal = "TK_LITERAL",
        /// A name directly followed by `(`; the text is the name alone.
        Function = "TK_FUNCTION",
        /// Digits only.
        Integer = "TK_INTEGER",
        /// A number with a fraction or an exponent.
        Float = "TK_FLOAT",
        /// `.`
        Dot = "TK_DOT",
        /// `,`
        Comma = "TK_COMMA",
        /// `:=`
        Assign = "TK_ASSIGN",
        /// `(`
        Obrace = "TK_OBRACE",
        /// `)`
        Cbrace = "TK_CBRACE",
        /// `;`
        Semicolon = "TK_SEMICOLON",
        /// `*`
        Star = "TK_STAR",
        /// `+`
        Plus = "TK_PLUS",
        /// `-`
        Minus = "TK_MINUS",
        /// `/`
        Div = "TK_DIV",
        /// `&`
        BitwiseAnd = "TK_BITWISE_AND",
        /// `|`
        BitwiseOr = "TK_BITWISE_OR",
        /// `^`
        BitwiseXor = "TK_BITWISE_XOR",
        /// `&&`
        LogicalAnd = "TK_LOGICAL_AND",
        /// `||`
        LogicalOr = "TK_LOGICAL_OR",
    }
    // MySQL Proxy 0.8's keyword list, in its numbering order (which is not
    // byte order: `SQLEXCEPTION` comes after `SQL_CALC_FOUND_ROWS`).
    // `COMMIT`, `BEGIN`, `COUNT` and the like are deliberately absent.
    keywords {
        SqlAccessible = "ACCESSIBLE",
        SqlAction = "ACTION",
        SqlAdd = "ADD",
        SqlAll = "ALL",
        SqlAlter = "ALTER",
        SqlAnalyze = "ANALYZE",
        SqlAnd = "AND",
        SqlAs = "AS",
        SqlAsc = "ASC",
        SqlAsensitive = "ASENSITIVE",
        SqlBefore = "BEFORE",
        SqlBetween = "BETWEEN",
        SqlBigint = "BIGINT",
        SqlBinary = "BINARY",
        SqlBit = "BIT",
        SqlBlob = "BLOB",
        SqlBoth = "BOTH",
        SqlBy = "BY",
        SqlCall = "CALL",
        SqlCascade = "CASCADE",
        SqlCase = "CASE",
        SqlChange = "CHANGE",
        SqlChar = "CHAR",
        SqlCharacter = "CHARACTER",
        SqlCheck = "CHECK",
        SqlCollate = "COLLATE",
        SqlColumn = "COLUMN",
        SqlCondition = "CONDITION",
        SqlConstraint = "CONSTRAINT",
        SqlContinue = "CONTINUE",
        SqlConvert = "CONVERT",
        SqlCreate = "CREATE",
        SqlCross = "CROSS",
        SqlCurrentDate = "CURRENT_DATE",
        SqlCurrentTime = "CURRENT_TIME",
        SqlCurrentTimestamp = "CURRENT_TIMESTAMP",
        SqlCurrentUser = "CURRENT_USER",
        SqlCursor = "CURSOR",
        SqlDatabase = "DATABASE",
        SqlDatabases = "DATABASES",
        SqlDate = "DATE",
        SqlDayHour = "DAY_HOUR",
        SqlDayMicrosecond = "DAY_MICROSECOND",
        SqlDayMinute = "DAY_MINUTE",
        SqlDaySecond = "DAY_SECOND",
        SqlDec = "DEC",
        SqlDecimal = "DECIMAL",
        SqlDeclare = "DECLARE",
        SqlDefault = "DEFAULT",
        SqlDelayed = "DELAYED",
        SqlDelete = "DELETE",
        SqlDesc = "DESC",
        SqlDescribe = "DESCRIBE",
        SqlDeterministic = "DETERMINISTIC",
        SqlDistinct = "DISTINCT",
        SqlDistinctrow = "DISTINCTROW",
        SqlDiv = "DIV",
        SqlDouble = "DOUBLE",
        SqlDrop = "DROP",
        SqlDual = "DUAL",
        SqlEach = "EACH",
        SqlElse = "ELSE",
        SqlElseif = "ELSEIF",
        SqlEnclosed = "ENCLOSED",
        SqlEnum = "ENUM",
        SqlEscaped = "ESCAPED",
        SqlExists = "EXISTS",
        SqlExit = "EXIT",
        SqlExplain = "EXPLAIN",
        SqlFalse = "FALSE",
        SqlFetch = "FETCH",
        SqlFloat = "FLOAT",
        SqlFloat4 = "FLOAT4",
        SqlFloat8 = "FLOAT8",
        SqlFor = "FOR",
        SqlForce = "FORCE",
        SqlForeign = "FOREIGN",
        SqlFrom = "FROM",
        SqlFulltext = "FULLTEXT",
        SqlGrant = "GRANT",
        SqlGroup = "GROUP",
        SqlHaving = "HAVING",
        SqlHighPriority = "HIGH_PRIORITY",
        SqlHourMicrosecond = "HOUR_MICROSECOND",
        SqlHourMinute = "HOUR_MINUTE",
        SqlHourSecond = "HOUR_SECOND",
        SqlIf = "IF",
        SqlIgnore = "IGNORE",
        SqlIn = "IN",
        SqlIndex = "INDEX",
        SqlInfile = "INFILE",
        SqlInner = "INNER",
        SqlInout = "INOUT",
        SqlInsensitive = "INSENSITIVE",
        SqlInsert = "INSERT",
        SqlInt = "INT",
        SqlInt1 = "INT1",
        SqlInt2 = "INT2",
        SqlInt3 = "INT3",
        SqlInt4 = "INT4",
        SqlInt8 = "INT8",
        SqlInteger = "INTEGER",
        SqlInterval = "INTERVAL",
        SqlInto = "INTO",
        SqlIs = "IS",
        SqlIterate = "ITERATE",
        SqlJoin = "JOIN",
        SqlKey = "KEY",
        SqlKeys = "KEYS",
        SqlKill = "KILL",
        SqlLeading = "LEADING",
        SqlLeave = "LEAVE",
        SqlLeft = "LEFT",
        SqlLike = "LIKE",
        SqlLimit = "LIMIT",
        SqlLinear = "LINEAR",
        SqlLines = "LINES",
        SqlLoad = "LOAD",
        SqlLocaltime = "LOCALTIME",
        SqlLocaltimestamp = "LOCALTIMESTAMP",
        SqlLock = "LOCK",
        SqlLong = "LONG",
        SqlLongblob = "LONGBLOB",
        SqlLongtext = "LONGTEXT",
        SqlLoop = "LOOP",
        SqlLowPriority = "LOW_PRIORITY",
        SqlMasterSslVerifyServerCert = "MASTER_SSL_VERIFY_SERVER_CERT",
        SqlMatch = "MATCH",
        SqlMediumblob = "MEDIUMBLOB",
        SqlMediumint = "MEDIUMINT",
        SqlMediumtext = "MEDIUMTEXT",
        SqlMiddleint = "MIDDLEINT",
        SqlMinuteMicrosecond = "MINUTE_MICROSECOND",
        SqlMinuteSecond = "MINUTE_SECOND",
        SqlMod = "MOD",
        SqlModifies = "MODIFIES",
        SqlNatural = "NATURAL",
        SqlNo = "NO",
        SqlNot = "NOT",
        SqlNoWriteToBinlog = "NO_WRITE_TO_BINLOG",
        SqlNull = "NULL",
        SqlNumeric = "NUMERIC",
        SqlOn = "ON",
        SqlOptimize = "OPTIMIZE",
        SqlOption = "OPTION",
        SqlOptionally = "OPTIONALLY",
        SqlOr = "OR",
        SqlOrder = "ORDER",
        SqlOut = "OUT",
        SqlOuter = "OUTER",
        SqlOutfile = "OUTFILE",
        SqlPrecision = "PRECISION",
        SqlPrimary = "PRIMARY",
        SqlProcedure = "PROCEDURE",
        SqlPurge = "PURGE",
        SqlRange = "RANGE",
        SqlRead = "READ",
        SqlReadOnly = "READ_ONLY",
        SqlReads = "READS",
        SqlReadWrite = "READ_WRITE",
        SqlReal = "REAL",
        SqlReferences = "REFERENCES",
        SqlRegexp = "REGEXP",
        SqlRelease = "RELEASE",
        SqlRename = "RENAME",
        SqlRepeat = "REPEAT",
        SqlReplace = "REPLACE",
        SqlRequire = "REQUIRE",
        SqlRestrict = "RESTRICT",
        SqlReturn = "RETURN",
        SqlRevoke = "REVOKE",
        SqlRight = "RIGHT",
        SqlRlike = "RLIKE",
        SqlSchema = "SCHEMA",
        SqlSchemas = "SCHEMAS",
        SqlSecondMicrosecond = "SECOND_MICROSECOND",
        SqlSelect = "SELECT",
        SqlSensitive = "SENSITIVE",
        SqlSeparator = "SEPARATOR",
        SqlSet = "SET",
        SqlShow = "SHOW",
        SqlSmallint = "SMALLINT",
        SqlSpatial = "SPATIAL",
        SqlSpecific = "SPECIFIC",
        SqlSql = "SQL",
        SqlSqlBigResult = "SQL_BIG_RESULT",
        SqlSqlCalcFoundRows = "SQL_CALC_FOUND_ROWS",
        SqlSqlexception = "SQLEXCEPTION",
        SqlSqlSmallResult = "SQL_SMALL_RESULT",
        SqlSqlstate = "SQLSTATE",
        SqlSqlwarning = "SQLWARNING",
        SqlSsl = "SSL",
        SqlStarting = "STARTING",
        SqlStraightJoin = "STRAIGHT_JOIN",
        SqlTable = "TABLE",
        SqlTerminated = "TERMINATED",
        SqlText = "TEXT",
        SqlThen = "THEN",
        SqlTime = "TIME",
        SqlTimestamp = "TIMESTAMP",
        SqlTinyblob = "TINYBLOB",
        SqlTinyint = "TINYINT",
        SqlTinytext = "TINYTEXT",
        SqlTo = "TO",
        SqlTrailing = "TRAILING",
        SqlTrigger = "TRIGGER",
        SqlTrue = "TRUE",
        SqlUndo = "UNDO",
        SqlUnion = "UNION",
        SqlUnique = "UNIQUE",
        SqlUnlock = "UNLOCK",
        SqlUnsigned = "UNSIGNED",
        SqlUpdate = "UPDATE",
        SqlUsage = "USAGE",
        SqlUse = "USE",
        SqlUsing = "USING",
        SqlUtcDate = "UTC_DATE",
        SqlUtcTime = "UTC_TIME",
        SqlUtcTimestamp = "UTC_TIMESTAMP",
        SqlValues = "VALUES",
        SqlVarbinary = "VARBINARY",
        SqlVarchar = "VARCHAR",
        SqlVarcharacter = "VARCHARACTER",
        SqlVarying = "VARYING",
        SqlWhen = "WHEN",
        SqlWhere = "WHERE",
        SqlWhile = "WHILE",
        SqlWith = "WITH",
        SqlWrite = "WRITE",
        SqlX509 = "X509",
        SqlXor = "XOR",
        SqlYearMonth = "YEAR_MONTH",
        SqlZerofill = "ZEROFILL",
    }
    after_keywords {
        /// A `/*! … */` comment (MySQL's executable comment); the text is what
        /// follows `/*!`, version number included, e.g. `50000 1 + `.
        CommentMysql = "TK_COMMENT_MYSQL",
    }
}

/// Length of the longest keyword (`MASTER_SSL_VERIFY_SERVER_CERT`): longer
/// words are not looked up.
const LONGEST_KEYWORD: usize = 29;

impl TokenId {
    /// `token_id` as scripts see it.
    pub fn number(self) -> i64 {
        self as i64
    }

    /// The token kind numbered `number`, if any. MySQL Proxy 0.8 reserves 262
    /// as an end marker that no token carries; it has no variant here.
    pub fn from_number(number: i64) -> Option<Self> {
        usize::try_from(number)
            .ok()
            .and_then(|index| Self::ALL.get(index))
            .copied()
    }

    /// The keyword token for `word`, compared case-insensitively (ASCII), or
    /// `None` if `word` is not a keyword.
    pub fn keyword(word: &[u8]) -> Option<Self> {
        if word.len() > LONGEST_KEYWORD {
            return None;
        }
        let mut uppercase = [0u8; LONGEST_KEYWORD];
        for (target, byte) in uppercase.iter_mut().zip(word) {
            *target = byte.to_ascii_uppercase();
        }
        let uppercase = uppercase.get(..word.len())?;
        Self::keyword_from_uppercase(std::str::from_utf8(uppercase).ok()?)
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Splits a query into tokens the way `tokenizer.tokenize(sql)` does.
///
/// Never fails: every byte sequence yields a token list (unknown bytes become
/// [`TokenId::Unknown`], unterminated strings and comments run to the end).
///
/// Where MySQL Proxy 0.8 mishandled input, this does what a user expects:
///
/// * a backslash at the very end of a quoted string, or before a line break
///   inside one, is kept in the text like any other escape (0.8's scanner had
///   no rule for it and dropped it);
/// * a closing quote directly followed by a different quote character ends
///   the string (`'a'"b"` is two strings; 0.8 took the closing `'` for
///   content and ran on);
/// * a block comment's text is everything up to the first `*/`, including
///   stars right before it (`/* a **/` holds ` a *`; 0.8 lost them).
pub fn tokenize(sql: &[u8]) -> Vec<Token> {
    let mut lexer = Lexer {
        input: sql,
        position: 0,
        tokens: Vec::new(),
    };
    lexer.run();
    lexer.tokens
}

/// The scanning state of one [`tokenize`] call.
struct Lexer<'a> {
    input: &'a [u8],
    /// Index of the next byte to scan.
    position: usize,
    tokens: Vec<Token>,
}

impl<'a> Lexer<'a> {
    fn run(&mut self) {
        while let Some(byte) = self.byte_at(0) {
            match byte {
                _ if is_space(byte) => self.position += 1,
                b'-' => self.dash(),
                b'/' => self.slash(),
                b'\'' | b'"' | b'`' => self.quoted(byte),
                b'0'..=b'9' | b'.' => self.number_or_word(),
                _ if is_word_byte(byte) => self.word(),
                _ => self.operator(byte),
            }
        }
    }

    /// The byte `offset` bytes after the current position.
    fn byte_at(&self, offset: usize) -> Option<u8> {
        self.input
            .get(self.position.saturating_add(offset))
            .copied()
    }

    /// The input bytes in `start..end` (empty if out of range).
    fn bytes(&self, start: usize, end: usize) -> &'a [u8] {
        self.input.get(start..end).unwrap_or_default()
    }

    fn push(&mut self, id: TokenId, text: &[u8]) {
        self.tokens.push(Token::new(id, text));
    }

    /// Emits the `length`-byte token at the current position as `id`.
    fn push_here(&mut self, id: TokenId, length: usize) {
        let end = self.position.saturating_add(length).min(self.input.len());
        self.push(id, self.bytes(self.position, end));
        self.position = end;
    }

    /// `-`: a minus sign, or the start of a `-- ` comment.
    fn dash(&mut self) {
        match (self.byte_at(1), self.byte_at(2), self.byte_at(3)) {
            (Some(b'-'), Some(b' ' | b'\t'), _) => {
                let content_start = self.position + 3;
                let rest = self.bytes(content_start, self.input.len());
                // The line break ends the comment but is not part of it; a
                // carriage return before it is, as in MySQL Proxy 0.8.
                match rest.iter().position(|&byte| byte == b'\n') {
                    Some(length) => {
                        self.push(
                            TokenId::Comment,
                            self.bytes(content_start, content_start + length),
                        );
                        self.position = content_start + length + 1;
                    }
                    None => {
                        self.push(TokenId::Comment, rest);
                        self.position = self.input.len();
                    }
                }
            }
            (Some(b'-'), Some(b'\n'), _) => {
                self.push(TokenId::Comment, b"");
                self.position += 3;
            }
            (Some(b'-'), Some(b'\r'), Some(b'\n')) => {
                self.push(TokenId::Comment, b"");
                self.position += 4;
            }
            _ => self.push_here(TokenId::Minus, 1),
        }
    }

    /// `/`: a division sign, or the start of a `/* */` or `/*! */` comment.
    fn slash(&mut self) {
        if self.byte_at(1) != Some(b'*') {
            self.push_here(TokenId::Div, 1);
            return;
        }
        let (id, content_start) = if self.byte_at(2) == Some(b'!') {
            (TokenId::CommentMysql, self.position + 3)
        } else {
            (TokenId::Comment, self.position + 2)
        };
        let rest = self.bytes(content_start, self.input.len());
        match rest.windows(2).position(|pair| pair == b"*/") {
            Some(length) => {
                self.push(id, self.bytes(content_start, content_start + length));
                self.position = content_start + length + 2;
            }
            None => {
                self.push(id, rest);
                self.position = self.input.len();
            }
        }
    }

    /// A string (`'`, `"`) or quoted name (`` ` ``) opened by `quote`.
    fn quoted(&mut self, quote: u8) {
        let id = if quote == b'`' {
            TokenId::Literal
        } else {
            TokenId::String
        };
        let mut text = Vec::new();
        let mut position = self.position + 1;
        while let Some(&byte) = self.input.get(position) {
            if byte == b'\\' {
                // Escapes are kept as written; only the escaped byte's
                // meaning (it does not close the string) matters here.
                text.push(byte);
                if let Some(&escaped) = self.input.get(position + 1) {
                    text.push(escaped);
                    position += 2;
                } else {
                    position += 1;
                }
            } else if byte == quote {
                if self.input.get(position + 1) == Some(&quote) {
                    text.push(quote);
                    position += 2;
                } else {
                    position += 1;
                    break;
                }
            } else {
                text.push(byte);
                position += 1;
            }
        }
        self.tokens.push(Token::new(id, text));
        self.position = position;
    }

    /// A digit or a dot: a number, a word that starts with digits (`1e`,
    /// `12abc`), or a lone dot.
    fn number_or_word(&mut self) {
        let word = DottedWord::scan(self.input, self.position);
        let number = scan_number(self.input, self.position);
        match (word, number) {
            // The longer match wins. On a tie (only `<digits>e<digits>`, such
            // as `1e5`) the word wins, as in MySQL Proxy 0.8: `1e5` is a
            // literal while `1e+5` and `1.0e5` are floats.
            (Some(word), Some((number_end, _))) if word.end() >= number_end => {
                self.emit_word(&word)
            }
            (_, Some((number_end, id))) => {
                self.push(id, self.bytes(self.position, number_end));
                self.position = number_end;
            }
            (Some(word), None) => self.emit_word(&word),
            (None, None) => self.push_here(TokenId::Dot, 1),
        }
    }

    /// A word starting with a letter, `_` or `@`.
    fn word(&mut self) {
        match DottedWord::scan(self.input, self.position) {
            Some(word) => self.emit_word(&word),
            // Unreachable: the caller saw a word byte here.
            None => self.push_here(TokenId::Unknown, 1),
        }
    }

    /// Emits each part of `word` (keyword, literal, or function for a last
    /// part directly followed by `(`) with dots between them.
    fn emit_word(&mut self, word: &DottedWord) {
        let parts = word.parts();
        for (index, &(start, end)) in parts.iter().enumerate() {
            if index > 0 {
                self.push(TokenId::Dot, b".");
            }
            let text = self.bytes(start, end);
            let is_last = index + 1 == parts.len();
            let id = if is_last && self.input.get(end) == Some(&b'(') {
                TokenId::Function
            } else {
                TokenId::keyword(text).unwrap_or(TokenId::Literal)
            };
            self.push(id, text);
        }
        self.position = word.end();
    }

    /// Operators and punctuation; anything unrecognised is a one-byte
    /// [`TokenId::Unknown`].
    fn operator(&mut self, byte: u8) {
        let next = self.byte_at(1);
        let (id, length) = match (byte, next) {
            (b'<', Some(b'=')) => (TokenId::Le, 2),
            (b'<', Some(b'>')) => (TokenId::Ne, 2),
            (b'<', _) => (TokenId::Lt, 1),
            (b'>', Some(b'=')) => (TokenId::Ge, 2),
            (b'>', _) => (TokenId::Gt, 1),
            (b'!', Some(b'=')) => (TokenId::Ne, 2),
            (b'=', _) => (TokenId::Eq, 1),
            (b':', Some(b'=')) => (TokenId::Assign, 2),
            (b'(', _) => (TokenId::Obrace, 1),
            (b')', _) => (TokenId::Cbrace, 1),
            (b';', _) => (TokenId::Semicolon, 1),
            (b',', _) => (TokenId::Comma, 1),
            (b'*', _) => (TokenId::Star, 1),
            (b'+', _) => (TokenId::Plus, 1),
            (b'&', Some(b'&')) => (TokenId::LogicalAnd, 2),
            (b'&', _) => (TokenId::BitwiseAnd, 1),
            (b'|', Some(b'|')) => (TokenId::LogicalOr, 2),
            (b'|', _) => (TokenId::BitwiseOr, 1),
            (b'^', _) => (TokenId::BitwiseXor, 1),
            _ => (TokenId::Unknown, 1),
        };
        self.push_here(id, length);
    }
}

/// SQL whitespace: what C's `isspace` accepts in the "C" locale.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// A byte that may appear in an unquoted word.
fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'@'
}

/// Up to three word parts joined by dots (`db.table.column`), the unit MySQL
/// Proxy 0.8's tokenizer matches in one go before splitting it. The limit is
/// visible: in `a.b.c.1d` the fourth part is not a word part but the float
/// `.1` followed by the literal `d`.
struct DottedWord {
    /// `start..end` of each part; only the first `count` entries are used.
    parts: [(usize, usize); 3],
    count: usize,
}

impl DottedWord {
    /// The dotted word starting at `start`, if a word part starts there.
    fn scan(input: &[u8], start: usize) -> Option<Self> {
        let first_end = word_part_end(input, start)?;
        let mut word = Self {
            parts: [(start, first_end); 3],
            count: 1,
        };
        let mut end = first_end;
        while word.count < word.parts.len() && input.get(end) == Some(&b'.') {
            let Some(part_end) = word_part_end(input, end + 1) else {
                break;
            };
            if let Some(slot) = word.parts.get_mut(word.count) {
                *slot = (end + 1, part_end);
            }
            word.count += 1;
            end = part_end;
        }
        Some(word)
    }

    fn parts(&self) -> &[(usize, usize)] {
        self.parts.get(..self.count).unwrap_or_default()
    }

    /// Index just past the last part.
    fn end(&self) -> usize {
        self.parts().last().map_or(0, |&(_, end)| end)
    }
}

/// End of the word part (`[0-9]*[A-Za-z_@][A-Za-z0-9_@]*`) starting at
/// `start`: a run of word bytes that is not all digits.
fn word_part_end(input: &[u8], start: usize) -> Option<usize> {
    let run = input.get(start..).unwrap_or_default();
    let length = run.iter().take_while(|&&byte| is_word_byte(byte)).count();
    let has_non_digit = run.iter().take(length).any(|byte| !byte.is_ascii_digit());
    has_non_digit.then_some(start + length)
}

/// The number starting at `start` and where it ends: digits
/// ([`TokenId::Integer`]), or digits with a fraction (`1.5`, `.5`) and/or an
/// exponent (`1e+5`, `1.5e5`) ([`TokenId::Float`]). `1.` is the integer `1`
/// (the dot is a token of its own), and so is the `1` of `1e`.
fn scan_number(input: &[u8], start: usize) -> Option<(usize, TokenId)> {
    let digits_end = |from: usize| {
        from + input
            .get(from..)
            .unwrap_or_default()
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count()
    };
    let integer_end = digits_end(start);
    let mut end = integer_end;
    let mut id = TokenId::Integer;
    if input.get(integer_end) == Some(&b'.') {
        let fraction_end = digits_end(integer_end + 1);
        if fraction_end > integer_end + 1 {
            end = fraction_end;
            id = TokenId::Float;
        }
    }
    if end == start {
        return None;
    }
    if matches!(input.get(end), Some(b'e' | b'E')) {
        let mut exponent_start = end + 1;
        if matches!(input.get(exponent_start), Some(b'+' | b'-')) {
            exponent_start += 1;
        }
        let exponent_end = digits_end(exponent_start);
        if exponent_end > exponent_start {
            end = exponent_end;
            id = TokenId::Float;
        }
    }
    Some((end, id))
}

/// Words that `normalize` upper-cases instead of back-quoting when they open
/// the query: transaction control that MySQL Proxy 0.8's keyword list lacks.
const STATEMENT_WORDS: [&[u8]; 4] = [b"COMMIT", b"ROLLBACK", b"BEGIN", b"START"];

/// The query fingerprint of `proxy.tokenizer.normalize(tokens)`: the query
/// with its constants replaced, so that queries differing only in values
/// group together (`analyze-query.lua`, `histogram.lua`).
///
/// Each token contributes:
///
/// * comments: nothing; `/*! … */` comments: `/*!<text>*/ ` verbatim, since
///   what they mean depends on the server version;
/// * strings, integers and floats: `? `;
/// * functions: the name upper-cased, no space (the `( ` follows);
/// * literals: `` `<text>` `` plus a space, except `@` variables (text as
///   written plus a space) and `COMMIT`, `ROLLBACK`, `BEGIN`, `START` opening
///   the query, and `TRANSACTION` right after such a `START`, which are
///   upper-cased plus a space;
/// * everything else (keywords, operators, unknown bytes): the text
///   upper-cased plus a space.
///
/// So `select count(*) from mysql.user` becomes
/// ``SELECT COUNT( * ) FROM `mysql` . `user` `` with a trailing space.
/// Upper-casing is ASCII only, like Lua's `string.upper` in the "C" locale.
/// A back-tick inside a quoted name is not doubled again, as in MySQL Proxy
/// 0.8: the fingerprint is a grouping key, not a query to run.
///
/// The result is bytes because literal and unknown-byte texts are copied
/// through unchanged.
///
/// "Opening the query" means the first token that is not a `/* */` or `-- `
/// comment (comments are dropped from the fingerprint, so a leading comment
/// must not change it); only the query's first statement is considered.
pub fn normalize(tokens: &[Token]) -> Vec<u8> {
    let mut fingerprint = Vec::with_capacity(tokens.iter().map(|token| token.text.len() + 3).sum());
    let mut significant = tokens
        .iter()
        .enumerate()
        .filter(|(_, token)| token.id != TokenId::Comment)
        .map(|(index, _)| index);
    let first = significant.next();
    let second = significant.next();
    let opening_word = |index: Option<usize>| -> Option<&[u8]> {
        let token = tokens.get(index?)?;
        (token.id == TokenId::Literal).then_some(token.text.as_slice())
    };
    let first_word = opening_word(first);
    let opens_with_statement_word = first_word.is_some_and(|word| {
        STATEMENT_WORDS
            .iter()
            .any(|known| word.eq_ignore_ascii_case(known))
    });
    let transaction_follows_start = first_word
        .is_some_and(|word| word.eq_ignore_ascii_case(b"START"))
        && opening_word(second).is_some_and(|word| word.eq_ignore_ascii_case(b"TRANSACTION"));

    for (index, token) in tokens.iter().enumerate() {
        let text = token.text.as_slice();
        match token.id {
            TokenId::Comment => {}
            TokenId::CommentMysql => {
                fingerprint.extend_from_slice(b"/*!");
                fingerprint.extend_from_slice(text);
                fingerprint.extend_from_slice(b"*/ ");
            }
            TokenId::String | TokenId::Integer | TokenId::Float => {
                fingerprint.extend_from_slice(b"? ")
            }
            TokenId::Function => fingerprint.extend(text.iter().map(u8::to_ascii_uppercase)),
            TokenId::Literal
                if (Some(index) == first && opens_with_statement_word)
                    || (Some(index) == second && transaction_follows_start) =>
            {
                push_uppercase_word(&mut fingerprint, text);
            }
            TokenId::Literal if text.first() == Some(&b'@') => {
                fingerprint.extend_from_slice(text);
                fingerprint.push(b' ');
            }
            TokenId::Literal => {
                fingerprint.push(b'`');
                fingerprint.extend_from_slice(text);
                fingerprint.extend_from_slice(b"` ");
            }
            _ => push_uppercase_word(&mut fingerprint, text),
        }
    }
    fingerprint
}

/// Appends `text` upper-cased (ASCII) and a space.
fn push_uppercase_word(fingerprint: &mut Vec<u8>, text: &[u8]) {
    fingerprint.extend(text.iter().map(u8::to_ascii_uppercase));
    fingerprint.push(b' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, text)` of each token, for compact expectations.
    fn lex(sql: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        tokenize(sql)
            .into_iter()
            .map(|token| (token.name(), token.text))
            .collect()
    }

    /// Builds an expectation list from `(name, text)` pairs.
    fn expect(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, Vec<u8>)> {
        pairs
            .iter()
            .map(|&(name, text)| (name, text.as_bytes().to_vec()))
            .collect()
    }

    fn fingerprint(sql: &str) -> String {
        String::from_utf8(normalize(&tokenize(sql.as_bytes()))).unwrap()
    }

    // --- the token table ---

    #[test]
    fn table_is_numbered_in_order() {
        assert_eq!(TokenId::ALL.len(), 262);
        for (index, id) in TokenId::ALL.iter().enumerate() {
            assert_eq!(id.number(), index as i64, "{id}");
            assert_eq!(TokenId::from_number(index as i64), Some(*id));
        }
        assert_eq!(TokenId::from_number(262), None);
        assert_eq!(TokenId::from_number(-1), None);
    }

    #[test]
    fn table_numbers_match_mysql_proxy() {
        let expected = [
            (0, "TK_UNKNOWN"),
            (1, "TK_LE"),
            (6, "TK_NE"),
            (7, "TK_STRING"),
            (8, "TK_COMMENT"),
            (9, "TK_LITERAL"),
            (10, "TK_FUNCTION"),
            (11, "TK_INTEGER"),
            (12, "TK_FLOAT"),
            (13, "TK_DOT"),
            (15, "TK_ASSIGN"),
            (16, "TK_OBRACE"),
            (22, "TK_DIV"),
            (27, "TK_LOGICAL_OR"),
            (28, "TK_SQL_ACCESSIBLE"),
            (34, "TK_SQL_AND"),
            (105, "TK_SQL_FROM"),
            (154, "TK_SQL_MASTER_SSL_VERIFY_SERVER_CERT"),
            (168, "TK_SQL_NULL"),
            (204, "TK_SQL_SELECT"),
            (212, "TK_SQL_SQL"),
            (215, "TK_SQL_SQLEXCEPTION"),
            (216, "TK_SQL_SQL_SMALL_RESULT"),
            (240, "TK_SQL_UPDATE"),
            (253, "TK_SQL_WHERE"),
            (257, "TK_SQL_X509"),
            (260, "TK_SQL_ZEROFILL"),
            (261, "TK_COMMENT_MYSQL"),
        ];
        for (number, name) in expected {
            assert_eq!(TokenId::from_number(number).unwrap().name(), name);
        }
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names: Vec<&str> = TokenId::ALL.iter().map(|id| id.name()).collect();
        assert!(names.iter().all(|name| name.starts_with("TK_")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TokenId::ALL.len());
    }

    #[test]
    fn every_keyword_is_found_by_its_spelling() {
        let keywords: Vec<TokenId> = TokenId::ALL
            .iter()
            .copied()
            .filter(|id| id.name().starts_with("TK_SQL_"))
            .collect();
        assert_eq!(keywords.len(), 233);
        for id in keywords {
            let spelling = id.name().strip_prefix("TK_SQL_").unwrap();
            assert!(spelling.len() <= LONGEST_KEYWORD, "{spelling}");
            assert_eq!(TokenId::keyword(spelling.as_bytes()), Some(id));
            let lower = spelling.to_ascii_lowercase();
            assert_eq!(TokenId::keyword(lower.as_bytes()), Some(id));
        }
        assert_eq!(
            TokenId::ALL
                .iter()
                .filter_map(|id| id.name().strip_prefix("TK_SQL_"))
                .map(str::len)
                .max(),
            Some(LONGEST_KEYWORD)
        );
    }

    #[test]
    fn non_keywords_are_not_found() {
        for word in [
            "COMMIT",
            "ROLLBACK",
            "BEGIN",
            "START",
            "TRANSACTION",
            "ENGINE",
            "COUNT",
            "",
            "SELECTS",
            "SELEC",
            "TK_SQL_SELECT",
            "MASTER_SSL_VERIFY_SERVER_CERTX",
        ] {
            assert_eq!(TokenId::keyword(word.as_bytes()), None, "{word}");
        }
        assert_eq!(TokenId::keyword(b"SEL\xffECT"), None);
        assert_eq!(TokenId::keyword(&[b'A'; 100]), None);
    }

    #[test]
    fn display_and_token_name() {
        assert_eq!(TokenId::SqlSelect.to_string(), "TK_SQL_SELECT");
        assert_eq!(Token::new(TokenId::Float, "1.5").name(), "TK_FLOAT");
    }

    // --- whitespace and unknown bytes ---

    #[test]
    fn empty_and_blank_queries_have_no_tokens() {
        assert!(tokenize(b"").is_empty());
        assert!(tokenize(b" \t\n\x0b\x0c\r ").is_empty());
    }

    #[test]
    fn whitespace_separates_tokens() {
        assert_eq!(
            lex(b"a\tb\nc\x0bd\x0ce\rf"),
            expect(&[
                ("TK_LITERAL", "a"),
                ("TK_LITERAL", "b"),
                ("TK_LITERAL", "c"),
                ("TK_LITERAL", "d"),
                ("TK_LITERAL", "e"),
                ("TK_LITERAL", "f"),
            ])
        );
    }

    #[test]
    fn unknown_bytes_are_single_tokens() {
        for byte in [
            b'#', b'%', b'?', b'!', b':', b'~', b'$', b'\\', b'[', b'}', 0u8, 0x7f,
        ] {
            let tokens = tokenize(&[byte]);
            assert_eq!(
                tokens,
                vec![Token::new(TokenId::Unknown, vec![byte])],
                "{byte}"
            );
        }
        // Non-ASCII bytes, even inside an unquoted name, are unknown one by one.
        assert_eq!(
            tokenize("café".as_bytes()),
            vec![
                Token::new(TokenId::Literal, "caf"),
                Token::new(TokenId::Unknown, vec![0xc3]),
                Token::new(TokenId::Unknown, vec![0xa9]),
            ]
        );
    }

    // --- operators ---

    #[test]
    fn every_operator() {
        let cases = [
            ("<", "TK_LT"),
            (">", "TK_GT"),
            ("<=", "TK_LE"),
            (">=", "TK_GE"),
            ("=", "TK_EQ"),
            ("<>", "TK_NE"),
            ("!=", "TK_NE"),
            ("(", "TK_OBRACE"),
            (")", "TK_CBRACE"),
            (";", "TK_SEMICOLON"),
            (":=", "TK_ASSIGN"),
            ("*", "TK_STAR"),
            ("+", "TK_PLUS"),
            ("/", "TK_DIV"),
            ("-", "TK_MINUS"),
            ("&", "TK_BITWISE_AND"),
            ("&&", "TK_LOGICAL_AND"),
            ("|", "TK_BITWISE_OR"),
            ("||", "TK_LOGICAL_OR"),
            ("^", "TK_BITWISE_XOR"),
            (",", "TK_COMMA"),
            (".", "TK_DOT"),
        ];
        for (text, name) in cases {
            assert_eq!(lex(text.as_bytes()), expect(&[(name, text)]), "{text}");
        }
    }

    #[test]
    fn operators_combine_greedily_by_two() {
        assert_eq!(lex(b"<=>"), expect(&[("TK_LE", "<="), ("TK_GT", ">")]));
        assert_eq!(lex(b"<<"), expect(&[("TK_LT", "<"), ("TK_LT", "<")]));
        assert_eq!(lex(b">>"), expect(&[("TK_GT", ">"), ("TK_GT", ">")]));
        assert_eq!(
            lex(b"|||"),
            expect(&[("TK_LOGICAL_OR", "||"), ("TK_BITWISE_OR", "|")])
        );
        assert_eq!(
            lex(b"&&&&"),
            expect(&[("TK_LOGICAL_AND", "&&"), ("TK_LOGICAL_AND", "&&")])
        );
        assert_eq!(lex(b"!=="), expect(&[("TK_NE", "!="), ("TK_EQ", "=")]));
        assert_eq!(lex(b"! ="), expect(&[("TK_UNKNOWN", "!"), ("TK_EQ", "=")]));
        assert_eq!(
            lex(b"::="),
            expect(&[("TK_UNKNOWN", ":"), ("TK_ASSIGN", ":=")])
        );
        assert_eq!(lex(b"=="), expect(&[("TK_EQ", "="), ("TK_EQ", "=")]));
    }

    #[test]
    fn operators_need_no_spaces() {
        assert_eq!(
            lex(b"a<=1"),
            expect(&[("TK_LITERAL", "a"), ("TK_LE", "<="), ("TK_INTEGER", "1")])
        );
        assert_eq!(
            lex(b"@a:=-1"),
            expect(&[
                ("TK_LITERAL", "@a"),
                ("TK_ASSIGN", ":="),
                ("TK_MINUS", "-"),
                ("TK_INTEGER", "1"),
            ])
        );
    }

    // --- comments ---

    #[test]
    fn block_comment_holds_inner_text() {
        assert_eq!(
            lex(b"SELECT /* hi there */ 1"),
            expect(&[
                ("TK_SQL_SELECT", "SELECT"),
                ("TK_COMMENT", " hi there "),
                ("TK_INTEGER", "1"),
            ])
        );
        assert_eq!(lex(b"/**/"), expect(&[("TK_COMMENT", "")]));
        assert_eq!(
            lex(b"/* a\n * b */"),
            expect(&[("TK_COMMENT", " a\n * b ")])
        );
        assert_eq!(
            lex(b"/* a * / b */"),
            expect(&[("TK_COMMENT", " a * / b ")])
        );
        assert_eq!(
            lex(b"1/*x*/2"),
            expect(&[
                ("TK_INTEGER", "1"),
                ("TK_COMMENT", "x"),
                ("TK_INTEGER", "2")
            ])
        );
    }

    #[test]
    fn block_comment_keeps_stars_before_its_end() {
        assert_eq!(lex(b"/* a **/"), expect(&[("TK_COMMENT", " a *")]));
        assert_eq!(lex(b"/***/"), expect(&[("TK_COMMENT", "*")]));
    }

    #[test]
    fn block_comments_do_not_nest() {
        assert_eq!(
            lex(b"/* a /* b */ c */"),
            expect(&[
                ("TK_COMMENT", " a /* b "),
                ("TK_LITERAL", "c"),
                ("TK_STAR", "*"),
                ("TK_DIV", "/"),
            ])
        );
    }

    #[test]
    fn mysql_comment_holds_text_after_the_bang() {
        assert_eq!(
            lex(b"SELECT /*!50000 1 + */ 2"),
            expect(&[
                ("TK_SQL_SELECT", "SELECT"),
                ("TK_COMMENT_MYSQL", "50000 1 + "),
                ("TK_INTEGER", "2"),
            ])
        );
        assert_eq!(lex(b"/*!*/"), expect(&[("TK_COMMENT_MYSQL", "")]));
        // An optimizer hint is an ordinary comment to this tokenizer.
        assert_eq!(
            lex(b"/*+ NO_ICP(t) */"),
            expect(&[("TK_COMMENT", "+ NO_ICP(t) ")])
        );
    }

    #[test]
    fn unterminated_block_comments_run_to_the_end() {
        assert_eq!(
            lex(b"1 /* open"),
            expect(&[("TK_INTEGER", "1"), ("TK_COMMENT", " open")])
        );
        assert_eq!(
            lex(b"/*! open *"),
            expect(&[("TK_COMMENT_MYSQL", " open *")])
        );
        assert_eq!(lex(b"/*"), expect(&[("TK_COMMENT", "")]));
        assert_eq!(lex(b"/*!"), expect(&[("TK_COMMENT_MYSQL", "")]));
        // `*/` must follow the opening `/*`, not share its star.
        assert_eq!(lex(b"/*/"), expect(&[("TK_COMMENT", "/")]));
    }

    #[test]
    fn dash_dash_blank_comment_runs_to_end_of_line() {
        assert_eq!(
            lex(b"SELECT 1 -- the one\nFROM t"),
            expect(&[
                ("TK_SQL_SELECT", "SELECT"),
                ("TK_INTEGER", "1"),
                ("TK_COMMENT", "the one"),
                ("TK_SQL_FROM", "FROM"),
                ("TK_LITERAL", "t"),
            ])
        );
        assert_eq!(lex(b"--\tx y"), expect(&[("TK_COMMENT", "x y")]));
        // Only the one blank after `--` is the marker.
        assert_eq!(lex(b"--  x"), expect(&[("TK_COMMENT", " x")]));
        assert_eq!(lex(b"-- "), expect(&[("TK_COMMENT", "")]));
        assert_eq!(
            lex(b"-- \n1"),
            expect(&[("TK_COMMENT", ""), ("TK_INTEGER", "1")])
        );
        // The carriage return of a CRLF line end stays in the text.
        assert_eq!(
            lex(b"-- x\r\n1"),
            expect(&[("TK_COMMENT", "x\r"), ("TK_INTEGER", "1")])
        );
        // A block comment marker inside a line comment means nothing.
        assert_eq!(
            lex(b"-- /* x\n2"),
            expect(&[("TK_COMMENT", "/* x"), ("TK_INTEGER", "2")])
        );
    }

    #[test]
    fn dash_dash_line_break_is_an_empty_comment() {
        assert_eq!(
            lex(b"1--\n2"),
            expect(&[("TK_INTEGER", "1"), ("TK_COMMENT", ""), ("TK_INTEGER", "2")])
        );
        assert_eq!(
            lex(b"--\r\n2"),
            expect(&[("TK_COMMENT", ""), ("TK_INTEGER", "2")])
        );
    }

    #[test]
    fn dash_dash_without_blank_is_two_minus_signs() {
        assert_eq!(
            lex(b"1--1"),
            expect(&[
                ("TK_INTEGER", "1"),
                ("TK_MINUS", "-"),
                ("TK_MINUS", "-"),
                ("TK_INTEGER", "1"),
            ])
        );
        assert_eq!(lex(b"--"), expect(&[("TK_MINUS", "-"), ("TK_MINUS", "-")]));
        assert_eq!(
            lex(b"--\r1"),
            expect(&[("TK_MINUS", "-"), ("TK_MINUS", "-"), ("TK_INTEGER", "1")])
        );
        assert_eq!(
            lex(b"--- x"),
            expect(&[("TK_MINUS", "-"), ("TK_COMMENT", "x")])
        );
    }

    #[test]
    fn hash_is_not_a_comment() {
        assert_eq!(
            lex(b"# not a comment"),
            expect(&[
                ("TK_UNKNOWN", "#"),
                ("TK_SQL_NOT", "not"),
                ("TK_LITERAL", "a"),
                ("TK_LITERAL", "comment"),
            ])
        );
    }

    // --- quoting ---

    #[test]
    fn quotes_make_strings_and_literals() {
        assert_eq!(
            lex(b"'single' \"double\" `back tick`"),
            expect(&[
                ("TK_STRING", "single"),
                ("TK_STRING", "double"),
                ("TK_LITERAL", "back tick"),
            ])
        );
        assert_eq!(
            lex(b"'' \"\" ``"),
            expect(&[("TK_STRING", ""), ("TK_STRING", ""), ("TK_LITERAL", "")])
        );
    }

    #[test]
    fn quoted_keywords_stay_strings_and_literals() {
        assert_eq!(
            lex(b"`select` 'from'"),
            expect(&[("TK_LITERAL", "select"), ("TK_STRING", "from")])
        );
        // ... and a quoted name before `(` is not a function.
        assert_eq!(
            lex(b"`f`("),
            expect(&[("TK_LITERAL", "f"), ("TK_OBRACE", "(")])
        );
    }

    #[test]
    fn backslash_escapes_are_kept_verbatim() {
        assert_eq!(lex(br"'it\'s'"), expect(&[("TK_STRING", r"it\'s")]));
        assert_eq!(lex(br#""a\"b""#), expect(&[("TK_STRING", r#"a\"b"#)]));
        assert_eq!(
            lex(br"'a\\' 1"),
            expect(&[("TK_STRING", r"a\\"), ("TK_INTEGER", "1")])
        );
        assert_eq!(lex(br"'\n\t\0'"), expect(&[("TK_STRING", r"\n\t\0")]));
        assert_eq!(lex(b"`a\\`b`"), expect(&[("TK_LITERAL", "a\\`b")]));
        assert_eq!(lex(b"'a\\\nb'"), expect(&[("TK_STRING", "a\\\nb")]));
    }

    #[test]
    fn doubled_opening_quote_is_one_quote() {
        assert_eq!(lex(b"'it''s'"), expect(&[("TK_STRING", "it's")]));
        assert_eq!(
            lex(b"\"say \"\"hi\"\"\""),
            expect(&[("TK_STRING", "say \"hi\"")])
        );
        assert_eq!(lex(b"`a``b`"), expect(&[("TK_LITERAL", "a`b")]));
        assert_eq!(lex(b"''''"), expect(&[("TK_STRING", "'")]));
        assert_eq!(lex(b"'a'''"), expect(&[("TK_STRING", "a'")]));
        assert_eq!(lex(b"''''''"), expect(&[("TK_STRING", "''")]));
    }

    #[test]
    fn other_quote_characters_are_content() {
        assert_eq!(lex(b"'say \"hi\"'"), expect(&[("TK_STRING", "say \"hi\"")]));
        assert_eq!(lex(b"\"it's\""), expect(&[("TK_STRING", "it's")]));
        assert_eq!(lex(b"'``'"), expect(&[("TK_STRING", "``")]));
        assert_eq!(lex(b"\"''\""), expect(&[("TK_STRING", "''")]));
        assert_eq!(lex(b"`'\"`"), expect(&[("TK_LITERAL", "'\"")]));
    }

    #[test]
    fn a_closing_quote_ends_the_string_whatever_follows() {
        assert_eq!(
            lex(b"'a'\"b\""),
            expect(&[("TK_STRING", "a"), ("TK_STRING", "b")])
        );
        assert_eq!(
            lex(b"''\"\""),
            expect(&[("TK_STRING", ""), ("TK_STRING", "")])
        );
        assert_eq!(
            lex(b"`t`'x'"),
            expect(&[("TK_LITERAL", "t"), ("TK_STRING", "x")])
        );
        assert_eq!(
            lex(b"'a' 'b'"),
            expect(&[("TK_STRING", "a"), ("TK_STRING", "b")])
        );
    }

    #[test]
    fn strings_keep_any_bytes() {
        assert_eq!(
            tokenize(b"'\xff\x00\n/* -- '"),
            vec![Token::new(TokenId::String, &b"\xff\x00\n/* -- "[..])]
        );
    }

    #[test]
    fn unterminated_quotes_run_to_the_end() {
        assert_eq!(
            lex(b"SELECT 'abc"),
            expect(&[("TK_SQL_SELECT", "SELECT"), ("TK_STRING", "abc")])
        );
        assert_eq!(lex(b"\"abc"), expect(&[("TK_STRING", "abc")]));
        assert_eq!(lex(b"`abc"), expect(&[("TK_LITERAL", "abc")]));
        assert_eq!(lex(b"'"), expect(&[("TK_STRING", "")]));
        assert_eq!(lex(b"'abc\\"), expect(&[("TK_STRING", "abc\\")]));
        assert_eq!(lex(b"'abc\\'"), expect(&[("TK_STRING", "abc\\'")]));
        assert_eq!(lex(b"'it''"), expect(&[("TK_STRING", "it'")]));
    }

    // --- numbers ---

    #[test]
    fn integers_and_floats() {
        let cases = [
            ("0", "TK_INTEGER"),
            ("123", "TK_INTEGER"),
            ("007", "TK_INTEGER"),
            ("1.5", "TK_FLOAT"),
            ("0.0", "TK_FLOAT"),
            (".5", "TK_FLOAT"),
            ("1e+1", "TK_FLOAT"),
            ("1E-10", "TK_FLOAT"),
            ("1.1e1", "TK_FLOAT"),
            ("1.1E+1", "TK_FLOAT"),
            (".1e+1", "TK_FLOAT"),
            (".1e1", "TK_FLOAT"),
        ];
        for (text, name) in cases {
            assert_eq!(lex(text.as_bytes()), expect(&[(name, text)]), "{text}");
        }
    }

    #[test]
    fn words_that_look_numeric_are_literals() {
        for text in [
            "1e", "e1", "12abc", "1_000", "0x1F", "0b101", "1e1", "12E34", "1e5x",
        ] {
            assert_eq!(
                lex(text.as_bytes()),
                expect(&[("TK_LITERAL", text)]),
                "{text}"
            );
        }
    }

    #[test]
    fn number_edges() {
        assert_eq!(lex(b"1."), expect(&[("TK_INTEGER", "1"), ("TK_DOT", ".")]));
        assert_eq!(
            lex(b"1.e5"),
            expect(&[("TK_INTEGER", "1"), ("TK_DOT", "."), ("TK_LITERAL", "e5")])
        );
        assert_eq!(
            lex(b"1.5.3"),
            expect(&[("TK_FLOAT", "1.5"), ("TK_FLOAT", ".3")])
        );
        assert_eq!(
            lex(b"1.5abc"),
            expect(&[("TK_FLOAT", "1.5"), ("TK_LITERAL", "abc")])
        );
        assert_eq!(
            lex(b"1e+"),
            expect(&[("TK_LITERAL", "1e"), ("TK_PLUS", "+")])
        );
        assert_eq!(
            lex(b"1e+5x"),
            expect(&[("TK_FLOAT", "1e+5"), ("TK_LITERAL", "x")])
        );
        assert_eq!(
            lex(b"1e5.5"),
            expect(&[("TK_LITERAL", "1e5"), ("TK_FLOAT", ".5")])
        );
        assert_eq!(
            lex(b"-1.5"),
            expect(&[("TK_MINUS", "-"), ("TK_FLOAT", "1.5")])
        );
        assert_eq!(lex(b".."), expect(&[("TK_DOT", "."), ("TK_DOT", ".")]));
    }

    #[test]
    fn hex_and_bit_strings_are_a_literal_and_a_string() {
        assert_eq!(
            lex(b"x'1F' b'01'"),
            expect(&[
                ("TK_LITERAL", "x"),
                ("TK_STRING", "1F"),
                ("TK_LITERAL", "b"),
                ("TK_STRING", "01"),
            ])
        );
    }

    // --- words ---

    #[test]
    fn keywords_are_case_insensitive_and_keep_their_text() {
        for text in ["select", "SELECT", "SeLeCt"] {
            assert_eq!(lex(text.as_bytes()), expect(&[("TK_SQL_SELECT", text)]));
        }
        assert_eq!(
            lex(b"current_timestamp Straight_Join x509 int8"),
            expect(&[
                ("TK_SQL_CURRENT_TIMESTAMP", "current_timestamp"),
                ("TK_SQL_STRAIGHT_JOIN", "Straight_Join"),
                ("TK_SQL_X509", "x509"),
                ("TK_SQL_INT8", "int8"),
            ])
        );
    }

    #[test]
    fn transaction_words_are_literals() {
        assert_eq!(
            lex(b"BEGIN; START TRANSACTION; COMMIT; ROLLBACK"),
            expect(&[
                ("TK_LITERAL", "BEGIN"),
                ("TK_SEMICOLON", ";"),
                ("TK_LITERAL", "START"),
                ("TK_LITERAL", "TRANSACTION"),
                ("TK_SEMICOLON", ";"),
                ("TK_LITERAL", "COMMIT"),
                ("TK_SEMICOLON", ";"),
                ("TK_LITERAL", "ROLLBACK"),
            ])
        );
    }

    #[test]
    fn variables_are_literals() {
        assert_eq!(
            lex(b"@var @@version @@global.max_connections @"),
            expect(&[
                ("TK_LITERAL", "@var"),
                ("TK_LITERAL", "@@version"),
                ("TK_LITERAL", "@@global"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "max_connections"),
                ("TK_LITERAL", "@"),
            ])
        );
        assert_eq!(
            lex(b"@'a b'"),
            expect(&[("TK_LITERAL", "@"), ("TK_STRING", "a b")])
        );
    }

    #[test]
    fn dotted_names_are_split_and_each_part_mapped() {
        assert_eq!(
            lex(b"db.tbl.col"),
            expect(&[
                ("TK_LITERAL", "db"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "tbl"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "col"),
            ])
        );
        // A keyword after a dot is still a keyword token.
        assert_eq!(
            lex(b"t.select"),
            expect(&[
                ("TK_LITERAL", "t"),
                ("TK_DOT", "."),
                ("TK_SQL_SELECT", "select")
            ])
        );
        assert_eq!(
            lex(b"a.b.c.d"),
            expect(&[
                ("TK_LITERAL", "a"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "b"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "c"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "d"),
            ])
        );
        assert_eq!(
            lex(b"t.1col"),
            expect(&[("TK_LITERAL", "t"), ("TK_DOT", "."), ("TK_LITERAL", "1col")])
        );
        assert_eq!(
            lex(b"t.5"),
            expect(&[("TK_LITERAL", "t"), ("TK_FLOAT", ".5")])
        );
        assert_eq!(
            lex(b"a..b"),
            expect(&[
                ("TK_LITERAL", "a"),
                ("TK_DOT", "."),
                ("TK_DOT", "."),
                ("TK_LITERAL", "b")
            ])
        );
        assert_eq!(lex(b"a."), expect(&[("TK_LITERAL", "a"), ("TK_DOT", ".")]));
        assert_eq!(
            lex(b"a. b"),
            expect(&[("TK_LITERAL", "a"), ("TK_DOT", "."), ("TK_LITERAL", "b")])
        );
        assert_eq!(
            lex(b"`db`.`t`"),
            expect(&[("TK_LITERAL", "db"), ("TK_DOT", "."), ("TK_LITERAL", "t")])
        );
    }

    #[test]
    fn at_most_three_parts_make_one_dotted_word() {
        // The fourth part starts a new match at its dot, where `.1` is a float.
        assert_eq!(
            lex(b"a.b.c.1d"),
            expect(&[
                ("TK_LITERAL", "a"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "b"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "c"),
                ("TK_FLOAT", ".1"),
                ("TK_LITERAL", "d"),
            ])
        );
        assert_eq!(
            lex(b"a.b.1d"),
            expect(&[
                ("TK_LITERAL", "a"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "b"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "1d"),
            ])
        );
    }

    #[test]
    fn a_word_before_an_opening_brace_is_a_function() {
        assert_eq!(
            lex(b"count(*)"),
            expect(&[
                ("TK_FUNCTION", "count"),
                ("TK_OBRACE", "("),
                ("TK_STAR", "*"),
                ("TK_CBRACE", ")"),
            ])
        );
        // Never keyword-mapped.
        assert_eq!(
            lex(b"IF(1,2,3)"),
            expect(&[
                ("TK_FUNCTION", "IF"),
                ("TK_OBRACE", "("),
                ("TK_INTEGER", "1"),
                ("TK_COMMA", ","),
                ("TK_INTEGER", "2"),
                ("TK_COMMA", ","),
                ("TK_INTEGER", "3"),
                ("TK_CBRACE", ")"),
            ])
        );
        assert_eq!(lex(b"VALUES(1)")[0], ("TK_FUNCTION", b"VALUES".to_vec()));
        // Only the last part of a dotted name.
        assert_eq!(
            lex(b"db.select("),
            expect(&[
                ("TK_LITERAL", "db"),
                ("TK_DOT", "."),
                ("TK_FUNCTION", "select"),
                ("TK_OBRACE", "("),
            ])
        );
        assert_eq!(
            lex(b"a.b.c.f("),
            expect(&[
                ("TK_LITERAL", "a"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "b"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "c"),
                ("TK_DOT", "."),
                ("TK_FUNCTION", "f"),
                ("TK_OBRACE", "("),
            ])
        );
        assert_eq!(
            lex(b"1e1("),
            expect(&[("TK_FUNCTION", "1e1"), ("TK_OBRACE", "(")])
        );
    }

    #[test]
    fn a_space_before_the_brace_makes_no_function() {
        assert_eq!(
            lex(b"count (*)")[..2],
            expect(&[("TK_LITERAL", "count"), ("TK_OBRACE", "(")])[..]
        );
        assert_eq!(
            lex(b"IN (1)")[..2],
            expect(&[("TK_SQL_IN", "IN"), ("TK_OBRACE", "(")])[..]
        );
    }

    #[test]
    fn a_whole_query() {
        assert_eq!(
            lex(b"SELECT u.name, COUNT(*) AS n FROM `my db`.users u WHERE u.id >= 10 AND u.note <> 'x' LIMIT 5;"),
            expect(&[
                ("TK_SQL_SELECT", "SELECT"),
                ("TK_LITERAL", "u"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "name"),
                ("TK_COMMA", ","),
                ("TK_FUNCTION", "COUNT"),
                ("TK_OBRACE", "("),
                ("TK_STAR", "*"),
                ("TK_CBRACE", ")"),
                ("TK_SQL_AS", "AS"),
                ("TK_LITERAL", "n"),
                ("TK_SQL_FROM", "FROM"),
                ("TK_LITERAL", "my db"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "users"),
                ("TK_LITERAL", "u"),
                ("TK_SQL_WHERE", "WHERE"),
                ("TK_LITERAL", "u"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "id"),
                ("TK_GE", ">="),
                ("TK_INTEGER", "10"),
                ("TK_SQL_AND", "AND"),
                ("TK_LITERAL", "u"),
                ("TK_DOT", "."),
                ("TK_LITERAL", "note"),
                ("TK_NE", "<>"),
                ("TK_STRING", "x"),
                ("TK_SQL_LIMIT", "LIMIT"),
                ("TK_INTEGER", "5"),
                ("TK_SEMICOLON", ";"),
            ])
        );
    }

    // --- normalize ---

    #[test]
    fn normalize_matches_the_documented_example() {
        assert_eq!(
            fingerprint("select count(*) from mysql.user"),
            "SELECT COUNT( * ) FROM `mysql` . `user` "
        );
    }

    #[test]
    fn normalize_replaces_constants() {
        assert_eq!(
            fingerprint("SELECT * FROM t WHERE a = 'x' AND b = 12 OR c IN (1.5, -2, .1e+1, \"y\")"),
            "SELECT * FROM `t` WHERE `a` = ? AND `b` = ? OR `c` IN ( ? , - ? , ? , ? ) "
        );
        assert_eq!(
            fingerprint("select 1"),
            fingerprint("SELECT   'something else'")
        );
    }

    #[test]
    fn normalize_drops_comments_and_keeps_mysql_comments() {
        assert_eq!(fingerprint("/* who */ SELECT 1 -- why\n"), "SELECT ? ");
        assert_eq!(
            fingerprint("SELECT /*!40001 SQL_NO_CACHE */ * FROM t"),
            "SELECT /*!40001 SQL_NO_CACHE */ * FROM `t` "
        );
    }

    #[test]
    fn normalize_keeps_variables_as_written() {
        assert_eq!(
            fingerprint("SELECT @@Version, @x := 1"),
            "SELECT @@Version , @x := ? "
        );
    }

    #[test]
    fn normalize_upper_cases_opening_transaction_words() {
        assert_eq!(fingerprint("commit"), "COMMIT ");
        assert_eq!(fingerprint("rollback"), "ROLLBACK ");
        assert_eq!(fingerprint("begin"), "BEGIN ");
        assert_eq!(fingerprint("start transaction"), "START TRANSACTION ");
        assert_eq!(
            fingerprint("start transaction with consistent snapshot"),
            "START TRANSACTION WITH `consistent` `snapshot` "
        );
        assert_eq!(fingerprint("/* c */ commit"), "COMMIT ");
        assert_eq!(fingerprint("commit work"), "COMMIT `work` ");
        assert_eq!(fingerprint("start slave"), "START `slave` ");
    }

    #[test]
    fn normalize_back_quotes_transaction_words_elsewhere() {
        assert_eq!(
            fingerprint("SELECT commit, transaction"),
            "SELECT `commit` , `transaction` "
        );
        assert_eq!(fingerprint("begin transaction"), "BEGIN `transaction` ");
        assert_eq!(fingerprint("`commit`"), "COMMIT ");
        assert_eq!(fingerprint("/*!1 x*/ commit"), "/*!1 x*/ `commit` ");
    }

    #[test]
    fn normalize_upper_cases_keywords_functions_and_the_rest() {
        assert_eq!(
            fingerprint("insert into t values (now(), 'a')"),
            "INSERT INTO `t` VALUES ( NOW( ) , ? ) "
        );
        assert_eq!(fingerprint("select a#b"), "SELECT `a` # `b` ");
        assert_eq!(fingerprint("select `my``t`"), "SELECT `my`t` ");
    }

    #[test]
    fn normalize_passes_bytes_through() {
        assert_eq!(normalize(&tokenize("é".as_bytes())), b"\xc3 \xa9 ".to_vec());
        assert_eq!(normalize(&tokenize(b"`\xff`")), b"`\xff` ".to_vec());
        assert!(normalize(&[]).is_empty());
    }

    // --- robustness ---

    /// A tiny deterministic generator (xorshift64*), so the test needs no
    /// extra crate and always checks the same inputs.
    struct Xorshift(u64);

    impl Xorshift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_keep_invariants() {
        // Mostly bytes that steer the lexer into its interesting states, plus
        // any byte at all.
        const INTERESTING: &[u8] = b"'\"`\\/*!-#\n\r\t .eE+-0123456789aZ_@(<>=|&:;,";
        let mut random = Xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let length = (random.next() % 40) as usize;
            let input: Vec<u8> = (0..length)
                .map(|_| {
                    let roll = random.next();
                    if roll & 3 == 0 {
                        (roll >> 8) as u8
                    } else {
                        INTERESTING[(roll >> 8) as usize % INTERESTING.len()]
                    }
                })
                .collect();
            let tokens = tokenize(&input);
            assert!(tokens.len() <= input.len(), "{input:?}");
            for token in &tokens {
                let text = token.text.as_slice();
                match token.id {
                    TokenId::Unknown => assert_eq!(text.len(), 1, "{input:?}"),
                    TokenId::Dot => assert_eq!(text, b".", "{input:?}"),
                    TokenId::Integer => {
                        assert!(
                            !text.is_empty() && text.iter().all(u8::is_ascii_digit),
                            "{input:?}"
                        )
                    }
                    TokenId::Float => assert!(!text.is_empty(), "{input:?}"),
                    TokenId::Function => assert!(!text.is_empty(), "{input:?}"),
                    _ => {}
                }
                assert!(text.len() <= input.len(), "{input:?}");
            }
            let _ = normalize(&tokens);
        }
    }

    #[test]
    fn large_inputs_are_handled() {
        let long_string = [b"'".as_slice(), &[b'a'; 100_000]].concat();
        assert_eq!(tokenize(&long_string).len(), 1);
        let many_tokens = b"a.b.c(1.5e5,'x')/**/-- y\n".repeat(5_000);
        let tokens = tokenize(&many_tokens);
        assert_eq!(tokens.len(), 5_000 * 12);
        assert!(!normalize(&tokens).is_empty());
    }
}
