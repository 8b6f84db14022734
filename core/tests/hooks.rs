//! The engine driven by an in-process plugin (no dynamic loader) against a
//! real MariaDB: every hook decision the core honours, seen by a real client.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use mysql::prelude::Queryable;
use mysql::Conn;
use mysql_proxy_core::{Engine, EngineConfig, LoadedPlugin};
use mysql_proxy_plugin_abi::{
    abi_stable::nonexhaustive_enum::NonExhaustive,
    abi_stable::std_types::{RSome, RVec},
    AuthDecision, AuthResultDecision, ConnectDecision, HandshakeDecision, Hooks, HostHandle,
    InjectedResult, Injection, ListenerSpec, OkResponse, OptionSpec, Plugin, PluginDefinition,
    PluginOptions, QueryDecision, Response, ResponseColumn, ResultDecision, ResultKind,
    ResultSetResponse, Session, SqlError,
};
use mysql_proxy_protocol::constants::{CapabilityFlags, StatusFlags, CHARSET_LATIN1_SWEDISH_CI};
use mysql_proxy_protocol::packets::{HandshakeResponse41, HandshakeV10};
use mysql_proxy_tests::{free_port, Endpoint, MariaDb, TEST_USER};

const COM_STMT_CLOSE: u8 = 0x19;

/// Sessions that reached `disconnect_client`.
static DISCONNECTED: AtomicUsize = AtomicUsize::new(0);

struct TestPlugin {
    address: String,
    /// Which hook decides otherwise than by default, and how (see
    /// `TestHooks`): one test per decision variant.
    scenario: String,
}

impl PluginDefinition for TestPlugin {
    const NAME: &'static str = "test";
    const VERSION: &'static str = "0";

    fn options() -> Vec<OptionSpec> {
        Vec::new()
    }

    fn init(options: &PluginOptions, host: HostHandle) -> Result<Self, String> {
        for backend in options.list("backend") {
            host.add_backend(
                backend.into(),
                NonExhaustive::new(mysql_proxy_plugin_abi::BackendType::ReadWrite),
            )
            .into_result()
            .map_err(|e| e.to_string())?;
        }
        let scenario = options.get("scenario").unwrap_or_default();
        if scenario.starts_with("pool-") {
            host.set_option("pool-max-idle".into(), "4".into())
                .into_result()
                .map_err(|e| e.to_string())?;
        }
        Ok(Self {
            address: options.get("address").unwrap_or_default().to_string(),
            scenario: options.get("scenario").unwrap_or_default().to_string(),
        })
    }
}

impl Plugin for TestPlugin {
    type Hooks = TestHooks;

    fn listeners(&self) -> Vec<ListenerSpec> {
        vec![ListenerSpec::new("test", &self.address)]
    }

    fn new_session(&self, _: &Session<'_>) -> TestHooks {
        TestHooks {
            seen: Vec::new(),
            scenario: self.scenario.clone(),
        }
    }
}

struct TestHooks {
    /// Summaries of injected results seen, for the `seen` query.
    seen: Vec<String>,
    scenario: String,
}

/// The challenge of the handshake the plugin sends itself.
const SCRAMBLE: [u8; 20] = *b"abcdefghijklmnopqrst";

fn query(text: &str) -> RVec<u8> {
    let mut payload = vec![3u8];
    payload.extend_from_slice(text.as_bytes());
    RVec::from(payload)
}

fn injection(id: i64, text: &str, buffer_result: bool) -> Injection {
    Injection {
        id,
        payload: query(text),
        buffer_result,
    }
}

fn one_value(name: &str, value: &str) -> Response {
    Response::ResultSet(ResultSetResponse {
        columns: RVec::from(vec![ResponseColumn {
            name: name.into(),
            column_type: 253,
        }]),
        rows: RVec::from(vec![RVec::from(vec![RSome(RVec::from(
            value.as_bytes().to_vec(),
        ))])]),
    })
}

impl Hooks for TestHooks {
    fn connect_server(&mut self, _: &mut Session<'_>) -> Result<ConnectDecision, SqlError> {
        Ok(match self.scenario.as_str() {
            "connect-default" => ConnectDecision::Default,
            "connect-reply-handshake" | "auth-reply-ok" => {
                let greeting = HandshakeV10::new(
                    b"5.5.99-plugin",
                    7,
                    &SCRAMBLE,
                    CapabilityFlags::PROTOCOL_41
                        | CapabilityFlags::SECURE_CONNECTION
                        | CapabilityFlags::LONG_PASSWORD
                        | CapabilityFlags::PLUGIN_AUTH
                        | CapabilityFlags::CONNECT_WITH_DB,
                    CHARSET_LATIN1_SWEDISH_CI,
                    StatusFlags::AUTOCOMMIT,
                    b"mysql_native_password",
                );
                ConnectDecision::greeting(&greeting.to_bytes())
            }
            "connect-reply-error" => {
                ConnectDecision::Reply(Response::Error(SqlError::new(1040, "08004", "too many")))
            }
            "pool-connect-fresh" => ConnectDecision::Fresh(0),
            _ => ConnectDecision::Backend(0),
        })
    }

    fn read_handshake(
        &mut self,
        _: &mut Session<'_>,
        handshake: &[u8],
    ) -> Result<HandshakeDecision, SqlError> {
        Ok(match self.scenario.as_str() {
            "handshake-rewrite" => {
                let mut greeting =
                    HandshakeV10::decode(&Bytes::copy_from_slice(handshake)).expect("handshake");
                greeting.server_version = Bytes::from_static(b"5.5.5-10.99.1-MariaDB-rewritten");
                HandshakeDecision::Rewrite(RVec::from(greeting.to_bytes().to_vec()))
            }
            "handshake-reply" => HandshakeDecision::Reply(Response::Error(SqlError::new(
                1129,
                "HY000",
                "(test) host blocked",
            ))),
            _ => HandshakeDecision::Forward,
        })
    }

    fn read_auth(&mut self, _: &mut Session<'_>, auth: &[u8]) -> Result<AuthDecision, SqlError> {
        Ok(match self.scenario.as_str() {
            "auth-rewrite" => {
                let mut login =
                    HandshakeResponse41::decode(&Bytes::copy_from_slice(auth)).expect("login");
                login.database = Some(Bytes::from_static(b"mysql"));
                AuthDecision::Rewrite(RVec::from(login.to_bytes().to_vec()))
            }
            "auth-reply-ok" => AuthDecision::Reply(Response::Ok(OkResponse::default())),
            "auth-reply-error" => AuthDecision::Reply(Response::Error(SqlError::new(
                1045,
                "28000",
                "(test) not you",
            ))),
            _ => AuthDecision::Forward,
        })
    }

    fn read_auth_result(
        &mut self,
        _: &mut Session<'_>,
        result: &[u8],
    ) -> Result<AuthResultDecision, SqlError> {
        Ok(match self.scenario.as_str() {
            "auth-result-replace" if result.first() == Some(&0xff) => {
                AuthResultDecision::Replace(Response::Error(SqlError::new(
                    1045,
                    "28000",
                    "(test) denied, said the plugin",
                )))
            }
            _ => AuthResultDecision::Forward,
        })
    }

    fn read_query(
        &mut self,
        session: &mut Session<'_>,
        packet: &[u8],
        queue: &mut RVec<Injection>,
    ) -> Result<QueryDecision, SqlError> {
        let text = String::from_utf8_lossy(packet.get(1..).unwrap_or_default()).to_lowercase();
        match text.as_str() {
            "select 'inject'" => {
                queue.push(injection(1, "SELECT 1", true));
                queue.push(injection(2, "SELECT 2", true));
                Ok(QueryDecision::SendQueue)
            }
            "select 'replace'" => {
                queue.push(injection(3, "SELECT 42", true));
                Ok(QueryDecision::SendQueue)
            }
            "select 'stream'" => {
                queue.push(injection(4, "SELECT 7", false));
                Ok(QueryDecision::SendQueue)
            }
            "select 'reply'" => Ok(QueryDecision::Reply(one_value("answer", "from the plugin"))),
            "select 'version'" => Ok(QueryDecision::Reply(one_value(
                "version",
                session.server_version().as_str(),
            ))),
            "select 'counts'" => {
                queue.push(injection(5, "SELECT 1/0 UNION ALL SELECT 2", true));
                Ok(QueryDecision::SendQueue)
            }
            "select 'discard'" => Ok(QueryDecision::Discard),
            _ if packet.first() == Some(&COM_STMT_CLOSE) && self.scenario == "query-discard" => {
                Ok(QueryDecision::Discard)
            }
            "select 'refuse'" => Err(SqlError::new(1234, "HY000", "refused by the plugin")),
            "select 'seen'" => Ok(QueryDecision::Reply(one_value(
                "seen",
                &self.seen.join(","),
            ))),
            "select 'bye'" => {
                session.set_close_after_reply(true);
                Ok(QueryDecision::Reply(one_value("bye", "bye")))
            }
            _ => Ok(QueryDecision::Forward),
        }
    }

    fn read_query_result(
        &mut self,
        _: &mut Session<'_>,
        result: &InjectedResult<'_>,
        _: &mut RVec<Injection>,
    ) -> Result<ResultDecision, SqlError> {
        let kind = match result.kind().into_enum() {
            Ok(ResultKind::ResultSet) => "rs",
            Ok(ResultKind::Ok) => "ok",
            Ok(ResultKind::Error) => "err",
            _ => "other",
        };
        self.seen.push(format!(
            "{}:{}:{}",
            result.id(),
            kind,
            result.packets().len()
        ));
        Ok(match result.id() {
            1 => ResultDecision::Ignore,
            5 => ResultDecision::Replace(one_value(
                "counts",
                &format!("{}:{}", result.row_count(), result.warnings()),
            )),
            3 => ResultDecision::Replace(one_value(
                "replaced",
                &format!("{} packets", result.packets().len()),
            )),
            _ => ResultDecision::Forward,
        })
    }

    fn disconnect_client(&mut self, _: &mut Session<'_>) {
        DISCONNECTED.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs the engine with the test plugin on its own thread until `stop` fires.
fn start_engine(
    backend: &MariaDb,
    scenario: &str,
) -> (Endpoint, mpsc::Sender<()>, thread::JoinHandle<()>) {
    let scenario = scenario.to_string();
    let port = free_port();
    let backend = backend.addr();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let (ready_tx, ready_rx) = mpsc::channel();
    let engine_thread = thread::spawn(move || {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        actix_rt::System::new().block_on(async move {
            let engine = Engine::new(EngineConfig::default(), logger);
            let module = mysql_proxy_plugin_abi::root_module::<TestPlugin>();
            let address = format!("127.0.0.1:{port}");
            let options = PluginOptions::from_pairs([
                ("address", address.as_str()),
                ("backend", backend.as_str()),
                ("scenario", scenario.as_str()),
            ]);
            let plugin = (module.init())(options.to_values(), engine.host())
                .into_result()
                .expect("plugin init");
            let running = engine
                .start(vec![LoadedPlugin {
                    name: "test".into(),
                    plugin,
                }])
                .await
                .expect("engine start");
            ready_tx.send(()).expect("ready");
            let _ = actix_rt::task::spawn_blocking(move || stop_rx.recv()).await;
            running.shutdown().await;
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("engine ready");
    (Endpoint::local(port), stop_tx, engine_thread)
}

#[test]
fn hook_decisions_reach_the_client() {
    let server = MariaDb::start();
    let (endpoint, stop, engine) = start_engine(&server, "");
    let mut conn = endpoint.root_conn();

    let value: Option<String> = conn.query_first("SELECT 'inject'").unwrap();
    assert_eq!(
        value.as_deref(),
        Some("2"),
        "only the forwarded injection shows"
    );
    let value: Option<String> = conn.query_first("SELECT 'replace'").unwrap();
    assert_eq!(
        value.as_deref(),
        Some("5 packets"),
        "count, column, EOF, row, EOF"
    );
    let value: Option<String> = conn.query_first("SELECT 'stream'").unwrap();
    assert_eq!(value.as_deref(), Some("7"));
    let value: Option<String> = conn.query_first("SELECT 'reply'").unwrap();
    assert_eq!(value.as_deref(), Some("from the plugin"));
    let error = conn.query_drop("SELECT 'refuse'").unwrap_err();
    assert!(
        error.to_string().contains("refused by the plugin"),
        "{error}"
    );
    let value: Option<String> = conn.query_first("SELECT 'seen'").unwrap();
    assert_eq!(value.as_deref(), Some("1:rs:5,2:rs:5,3:rs:5,4:rs:0"));
    // Row count and warnings of an injected result are the server's.
    let value: Option<String> = conn.query_first("SELECT 'counts'").unwrap();
    assert_eq!(value.as_deref(), Some("2:1"), "two rows, one division by 0");
    // Plain queries still relay after all that.
    let value: Option<u32> = conn.query_first("SELECT 40 + 2").unwrap();
    assert_eq!(value, Some(42));

    let value: Option<String> = conn.query_first("SELECT 'bye'").unwrap();
    assert_eq!(value.as_deref(), Some("bye"));
    assert!(
        conn.query_drop("SELECT 1").is_err(),
        "closed after the reply"
    );

    let before = DISCONNECTED.load(Ordering::SeqCst);
    assert!(before >= 1);
    stop.send(()).unwrap();
    engine.join().unwrap();
}

/// Runs `body` against the engine whose test plugin plays `scenario`.
fn with_scenario(scenario: &str, body: impl FnOnce(&Endpoint, &MariaDb)) {
    let server = MariaDb::start();
    let (endpoint, stop, engine) = start_engine(&server, scenario);
    body(&endpoint, &server);
    stop.send(()).unwrap();
    engine.join().unwrap();
}

/// Options for a client that sends nothing of its own at connect (the
/// crate otherwise asks for `@@max_allowed_packet`, which only a server can
/// answer).
fn quiet(opts: mysql::OptsBuilder) -> mysql::OptsBuilder {
    opts.max_allowed_packet(Some(16 << 20))
}

/// A connection attempt's refusal: its code and message.
fn refusal(attempt: mysql::Result<Conn>) -> (u16, String) {
    match attempt {
        Err(mysql::Error::MySqlError(error)) => (error.code, error.message),
        other => panic!(
            "expected the server's refusal, got {:?}",
            other.map(|_| "a connection")
        ),
    }
}

fn one_string(conn: &mut Conn, query: &str) -> String {
    conn.query_first::<String, _>(query).unwrap().unwrap()
}

#[test]
fn connect_default_lets_the_host_pick_a_backend() {
    with_scenario("connect-default", |endpoint, server| {
        let mut conn = endpoint.root_conn();
        let port: u16 = conn.query_first("SELECT @@port").unwrap().unwrap();
        assert_eq!(port, server.port());
    });
}

#[test]
fn connect_fresh_opens_a_new_connection_though_one_is_pooled() {
    for (scenario, reused) in [
        ("pool-connect-backend", true),
        ("pool-connect-fresh", false),
    ] {
        with_scenario(scenario, |endpoint, _| {
            let thread_id = |conn: &mut Conn| -> u64 {
                conn.query_first("SELECT CONNECTION_ID()").unwrap().unwrap()
            };
            let mut first = endpoint.root_conn();
            let parked = thread_id(&mut first);
            drop(first);
            // The pool holds the first client's connection once it is parked.
            thread::sleep(Duration::from_millis(300));
            let mut second = endpoint.root_conn();
            assert_eq!(thread_id(&mut second) == parked, reused, "{scenario}");
        });
    }
}

#[test]
fn connect_reply_with_a_handshake_answers_the_client_without_a_server() {
    with_scenario("connect-reply-handshake", |endpoint, _| {
        // No server checks the login: the host lets it in (the plugin did
        // not check it either), and the plugin answers the queries.
        let mut conn = Conn::new(quiet(endpoint.opts("root", None))).unwrap();
        assert_eq!(one_string(&mut conn, "SELECT 'reply'"), "from the plugin");
        assert_eq!(one_string(&mut conn, "SELECT 'version'"), "5.5.99-plugin");
    });
}

#[test]
fn connect_reply_with_an_error_refuses_the_client() {
    with_scenario("connect-reply-error", |endpoint, _| {
        let (code, message) = refusal(Conn::new(endpoint.root_opts()));
        assert_eq!((code, message.as_str()), (1040, "too many"));
    });
}

#[test]
fn handshake_rewrite_is_what_the_client_is_greeted_with() {
    with_scenario("handshake-rewrite", |endpoint, _| {
        let mut conn = endpoint.root_conn();
        assert_eq!(
            one_string(&mut conn, "SELECT 'version'"),
            "5.5.5-10.99.1-MariaDB-rewritten"
        );
        // The challenge is the server's: the login still works.
        let sum: u16 = conn.query_first("SELECT 2 + 2").unwrap().unwrap();
        assert_eq!(sum, 4);
    });
}

#[test]
fn handshake_reply_refuses_the_client() {
    with_scenario("handshake-reply", |endpoint, _| {
        let (code, message) = refusal(Conn::new(endpoint.root_opts()));
        assert_eq!((code, message.as_str()), (1129, "(test) host blocked"));
    });
}

#[test]
fn auth_rewrite_is_the_login_the_server_gets() {
    with_scenario("auth-rewrite", |endpoint, _| {
        // The client asks for `test`; the plugin's login names `mysql`.
        let mut conn = endpoint.root_conn();
        assert_eq!(one_string(&mut conn, "SELECT DATABASE()"), "mysql");
    });
}

#[test]
fn auth_reply_ok_lets_the_client_in_without_the_server() {
    with_scenario("auth-reply-ok", |endpoint, _| {
        let opts = quiet(endpoint.opts(TEST_USER, Some("any password at all")));
        let mut conn = Conn::new(opts).unwrap();
        assert_eq!(one_string(&mut conn, "SELECT 'reply'"), "from the plugin");
    });
}

#[test]
fn auth_reply_error_refuses_the_login() {
    with_scenario("auth-reply-error", |endpoint, _| {
        let (code, message) = refusal(Conn::new(endpoint.root_opts()));
        assert_eq!((code, message.as_str()), (1045, "(test) not you"));
    });
}

#[test]
fn auth_result_replace_is_what_the_client_is_told() {
    with_scenario("auth-result-replace", |endpoint, _| {
        // The server refuses the wrong password; the plugin words it.
        let attempt = Conn::new(endpoint.opts(TEST_USER, Some("wrong")));
        let (code, message) = refusal(attempt);
        assert_eq!(
            (code, message.as_str()),
            (1045, "(test) denied, said the plugin")
        );
        // A right login passes as the server said.
        let mut conn = endpoint.root_conn();
        assert_eq!(one_string(&mut conn, "SELECT 'ok'"), "ok");
    });
}

#[test]
fn query_discard_drops_a_command_without_an_answer_and_refuses_one_that_needs_one() {
    with_scenario("query-discard", |endpoint, _| {
        let mut conn = endpoint.root_conn();
        let statement = conn.prep("SELECT 1").unwrap();
        // COM_STMT_CLOSE has no answer: dropped, the session goes on, and
        // the server never saw it.
        conn.close(statement).unwrap();
        let closes: (String, u64) = conn
            .query_first("SHOW SESSION STATUS LIKE 'Com_stmt_close'")
            .unwrap()
            .unwrap();
        assert_eq!(closes.1, 0);
        // A query waits for an answer: it gets an error instead of nothing.
        let error = conn.query_drop("SELECT 'discard'").unwrap_err();
        assert!(error.to_string().contains("discarded"), "{error}");
        assert_eq!(one_string(&mut conn, "SELECT 'still here'"), "still here");
    });
}
