//! The engine driven by an in-process plugin (no dynamic loader) against a
//! real MariaDB: every hook decision the core honours, seen by a real client.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mysql::prelude::Queryable;
use mysql_proxy_core::{Engine, EngineConfig, LoadedPlugin};
use mysql_proxy_plugin_abi::{
    abi_stable::nonexhaustive_enum::NonExhaustive,
    abi_stable::std_types::{RSome, RVec},
    ConnectDecision, Hooks, HostHandle, InjectedResult, Injection, ListenerSpec, OptionSpec,
    Plugin, PluginDefinition, PluginOptions, QueryDecision, Response, ResponseColumn,
    ResultDecision, ResultKind, ResultSetResponse, Session, SqlError,
};
use mysql_proxy_tests::{free_port, Endpoint, MariaDb};

/// Sessions that reached `disconnect_client`.
static DISCONNECTED: AtomicUsize = AtomicUsize::new(0);

struct TestPlugin {
    address: String,
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
        Ok(Self {
            address: options.get("address").unwrap_or_default().to_string(),
        })
    }
}

impl Plugin for TestPlugin {
    type Hooks = TestHooks;

    fn listeners(&self) -> Vec<ListenerSpec> {
        vec![ListenerSpec::new("test", &self.address)]
    }

    fn new_session(&self, _: &Session<'_>) -> TestHooks {
        TestHooks::default()
    }
}

#[derive(Default)]
struct TestHooks {
    /// Summaries of injected results seen, for the `seen` query.
    seen: Vec<String>,
}

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
        Ok(ConnectDecision::Backend(0))
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
fn start_engine(backend: &MariaDb) -> (Endpoint, mpsc::Sender<()>, thread::JoinHandle<()>) {
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
    let (endpoint, stop, engine) = start_engine(&server);
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
