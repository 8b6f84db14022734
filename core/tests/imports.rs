//! No import cycles between the source files of `core/src` and `chassis/src`.
//!
//! DESIGN: a crate's modules have a direction. A file that imports another
//! depends on it and is read after it; the dependency runs one way, from the
//! session down to the network, from the application down to its parts. When
//! two files import each other, directly or round a longer loop, that
//! direction is lost: they are two rooms that cannot be understood apart,
//! since neither can be read, changed or tested without the other. This test
//! builds the graph of imports between the files of each crate and fails if
//! it has a cycle, listing each cycle as a chain of files with the line that
//! makes every step of it.
//!
//! Every `.rs` file under `src/` is one node, named after the module it holds
//! (`src/lib.rs` and `src/main.rs` are the crate root, `src/a.rs` and
//! `src/a/mod.rs` are `a`, `src/a/b.rs` is `a::b`). A file imports another
//! when one of its paths names the other's module or an item in it:
//!
//! - `use` items, `pub use` included, with their `{...}` groups (nested, over
//!   several lines), `self`, `*` and `as` renames, starting with `crate::`,
//!   `self::`, `super::` (repeated or not), or with the name of a child module
//!   the file declares (`pub use conn::Conn;` in `net/mod.rs`);
//! - paths written in code with the same starts (`crate::error::Fault::Backend`,
//!   `super::x::f()`, `lifecycle::Session::new(...)` in `session/mod.rs`).
//!
//! A path goes to the file of its longest prefix that is a file's module:
//! `crate::backend::server::ServerConn` to `backend/server.rs`,
//! `crate::backend::BackendLease` to `backend/mod.rs` (even if `mod.rs` only
//! re-exports it: it is then `mod.rs` that imports the file defining it).
//! `super::` from a file to its parent module is an import of the parent's
//! file. Not imports: `mod x;` (a parent declaring its children), paths in
//! comments (doc comments included) and string or char literals, items under
//! `#[cfg(test)]` (a test module may import its parent), paths to other
//! crates, and a file's paths to itself (its inline modules included).
//!
//! Only std: the scanner is a small Rust lexer plus a reader of `use` trees,
//! not a full parser; its rules are tested below on tricky inputs, and the
//! cycle finder on a made-up graph.

// A failed expectation here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::Path;

// ---------------------------------------------------------------------------
// The checks on the real crates.

#[test]
fn core_src_has_no_import_cycles() {
    check_crate("core");
}

#[test]
fn chassis_src_has_no_import_cycles() {
    check_crate("chassis");
}

/// Reads `<workspace>/<name>/src`, builds its import graph, fails on a cycle.
fn check_crate(name: &str) {
    let core_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = core_dir
        .parent()
        .expect("core's manifest directory has a parent");
    let src = workspace.join(name).join("src");
    let files = read_crate(&src, &format!("{name}/src"));
    assert!(
        files.iter().any(|file| file.module.is_empty()),
        "no src/lib.rs or src/main.rs found under {}",
        src.display()
    );
    let graph = build_graph(&files);
    let edges: usize = graph.values().map(BTreeMap::len).sum();
    assert!(
        files.len() < 2 || edges > 0,
        "{} files under {} and not one import between them: the scanner is broken",
        files.len(),
        src.display()
    );
    if let Some(report) = cycle_report(&graph) {
        panic!("{report}");
    }
}

// ---------------------------------------------------------------------------
// Files and their modules.

/// One source file: its name as shown (`core/src/a/b.rs`), its module path
/// (`["a", "b"]`) and its text.
struct SourceFile {
    display: String,
    module: Vec<String>,
    text: String,
}

/// Every `.rs` file under `src`, in path order.
fn read_crate(src: &Path, label: &str) -> Vec<SourceFile> {
    let mut relative = Vec::new();
    walk(src, "", &mut relative);
    relative.sort();
    relative
        .into_iter()
        .map(|rel| {
            let text = fs::read_to_string(src.join(&rel))
                .unwrap_or_else(|error| panic!("reading {label}/{rel}: {error}"));
            SourceFile {
                display: format!("{label}/{rel}"),
                module: module_of(&rel),
                text,
            }
        })
        .collect()
}

/// Collects the paths, relative to the walk's start and joined with `/`, of
/// the `.rs` files under `dir`.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()));
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_dir() {
            walk(&path, &format!("{prefix}{name}/"), out);
        } else if name.ends_with(".rs") {
            out.push(format!("{prefix}{name}"));
        }
    }
}

/// The module a file under `src/` holds: `lib.rs`/`main.rs` the root,
/// `a.rs` and `a/mod.rs` `a`, `a/b.rs` `a::b`.
fn module_of(relative: &str) -> Vec<String> {
    let mut parts: Vec<String> = relative.split('/').map(str::to_string).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    let is_root = parts.is_empty() && (stem == "lib" || stem == "main");
    if stem != "mod" && !is_root {
        parts.push(stem.to_string());
    }
    parts
}

// ---------------------------------------------------------------------------
// The import graph.

/// Where an import is written: the line and its text (a `use` item in one
/// line, however many it spans).
#[derive(Clone, Debug)]
struct Evidence {
    line: usize,
    text: String,
}

/// File -> the files it imports, each with the first line importing it.
type Graph = BTreeMap<String, BTreeMap<String, Evidence>>;

fn build_graph(files: &[SourceFile]) -> Graph {
    let mut by_module: BTreeMap<Vec<String>, &str> = BTreeMap::new();
    for file in files {
        if let Some(other) = by_module.insert(file.module.clone(), &file.display) {
            panic!(
                "{} and {} both hold module `{}`",
                other,
                file.display,
                module_name(&file.module)
            );
        }
    }
    let mut graph = Graph::new();
    for file in files {
        let imports = graph.entry(file.display.clone()).or_default();
        let scan = scan(&file.text);
        for reference in &scan.references {
            let Some(target) = resolve(
                &file.module,
                &reference.scope,
                &reference.segments,
                &scan.children,
            ) else {
                continue;
            };
            let Some(owner) = (0..=target.len())
                .rev()
                .find_map(|len| by_module.get(&target[..len]))
            else {
                continue;
            };
            if *owner != file.display {
                imports
                    .entry(owner.to_string())
                    .or_insert_with(|| Evidence {
                        line: reference.line,
                        text: reference.text.clone(),
                    });
            }
        }
    }
    graph
}

fn module_name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        format!("crate::{}", module.join("::"))
    }
}

/// The absolute module path (from the crate root) a path names, or `None`
/// when it names another crate or nothing this test follows. `file` is the
/// file's module, `scope` the inline modules around the path inside the file,
/// `children` the modules the file declares with `mod x;`.
fn resolve(
    file: &[String],
    scope: &[String],
    segments: &[String],
    children: &BTreeSet<String>,
) -> Option<Vec<String>> {
    let mut here: Vec<String> = file.iter().chain(scope).cloned().collect();
    let first = segments.first()?.as_str();
    let mut next = match first {
        "crate" => {
            here.clear();
            1
        }
        "self" => 1,
        "super" => 0,
        child if scope.is_empty() && children.contains(child) => 0,
        _ => return None,
    };
    while segments.get(next).map(String::as_str) == Some("super") {
        here.pop()?;
        next += 1;
    }
    here.extend(segments[next..].iter().cloned());
    Some(here)
}

// ---------------------------------------------------------------------------
// Cycles.

/// The strongly connected components of more than one file (self-edges
/// ignored), each sorted, in order of their first file.
fn strongly_connected(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<String>>,
    }

    impl<'g> Tarjan<'g> {
        fn visit(&mut self, node: &'g str) {
            let graph = self.graph;
            let number = self.index.len();
            self.index.insert(node, number);
            self.low.insert(node, number);
            self.stack.push(node);
            self.on_stack.insert(node);
            for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
                let next = next.as_str();
                if next == node {
                    continue;
                }
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[node].min(self.low[next]);
                    self.low.insert(node, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[node].min(self.index[next]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    self.on_stack.remove(member);
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.components.push(component);
                }
            }
        }
    }

    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    let nodes: BTreeSet<&str> = graph
        .iter()
        .flat_map(|(from, to)| std::iter::once(from).chain(to.keys()))
        .map(String::as_str)
        .collect();
    for node in nodes {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    let mut components = tarjan.components;
    components.sort();
    components
}

/// Cycles through a strongly connected component, enough that each import
/// between its files shows in one: for every such import `a -> b`, `a`
/// followed by the shortest way from `b` back to `a`. Each cycle is a chain
/// ending where it starts, rotated to start at its first file in path order;
/// shortest cycles first.
fn cycles_in(graph: &Graph, component: &[String]) -> Vec<Vec<String>> {
    let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let mut cycles = BTreeSet::new();
    for from in component {
        for to in graph.get(from).into_iter().flat_map(BTreeMap::keys) {
            if to == from || !members.contains(to.as_str()) {
                continue;
            }
            let Some(back) = shortest_path(graph, &members, to, from) else {
                continue;
            };
            let mut ring = vec![from.clone()];
            ring.extend(back);
            ring.pop(); // `from` again
            let start = (0..ring.len()).min_by_key(|&at| &ring[at]).unwrap_or(0);
            ring.rotate_left(start);
            ring.push(ring[0].clone());
            cycles.insert((ring.len(), ring));
        }
    }
    cycles.into_iter().map(|(_, ring)| ring).collect()
}

/// The shortest chain `from ... to` staying inside `members`.
fn shortest_path(
    graph: &Graph,
    members: &BTreeSet<&str>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    let mut seen = BTreeSet::from([from]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![to.to_string()];
            let mut at = to;
            while let Some(&previous) = came_from.get(at) {
                path.push(previous.to_string());
                at = previous;
            }
            path.reverse();
            return Some(path);
        }
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            let next = next.as_str();
            if members.contains(next) && seen.insert(next) {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// The failure message, or `None` when the graph has no cycle.
fn cycle_report(graph: &Graph) -> Option<String> {
    let components = strongly_connected(graph);
    if components.is_empty() {
        return None;
    }
    let mut report = format!(
        "import cycles between source files: {} group(s) of files importing each other.\n\
         DESIGN: the crate's modules have a direction; files that import each other are \
         two rooms that cannot be understood apart. Move what both need into a module \
         below both, or turn one import around.\n",
        components.len()
    );
    for component in &components {
        report.push_str(&format!(
            "\n{} files in one cycle: {}\n",
            component.len(),
            component.join(", ")
        ));
        for cycle in cycles_in(graph, component) {
            report.push_str(&format!("  {}\n", cycle.join(" -> ")));
            for step in cycle.windows(2) {
                let evidence = &graph[&step[0]][&step[1]];
                report.push_str(&format!(
                    "      {}:{}: {}\n",
                    step[0], evidence.line, evidence.text
                ));
            }
        }
    }
    Some(report)
}

// ---------------------------------------------------------------------------
// The lexer: just enough of Rust's to tell code from comments and literals.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok {
    /// Identifiers and keywords (raw identifiers without their `r#`).
    Ident(String),
    /// `::`
    PathSep,
    Punct(char),
    /// String, char, byte and number literals (their text is not needed).
    Literal,
    Lifetime,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let start_line = line;
        let tok = if ch == '\n' {
            line += 1;
            i += 1;
            continue;
        } else if ch.is_whitespace() {
            i += 1;
            continue;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
            continue;
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            continue;
        } else if ch == '"' {
            i = skip_string(&c, i + 1, &mut line);
            Tok::Literal
        } else if ch == '\'' {
            let (end, tok) = char_or_lifetime(&c, i);
            i = end;
            tok
        } else if ch.is_ascii_digit() {
            while i < c.len()
                && (is_ident_continue(c[i]) || (c[i] == '.' && at(i + 1).is_ascii_digit()))
            {
                i += 1;
            }
            Tok::Literal
        } else if is_ident_start(ch) {
            let start = i;
            while i < c.len() && is_ident_continue(c[i]) {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            match (word.as_str(), at(i)) {
                ("b" | "c", '"') => {
                    i = skip_string(&c, i + 1, &mut line);
                    Tok::Literal
                }
                ("b", '\'') => {
                    let (end, _) = char_or_lifetime(&c, i);
                    i = end;
                    Tok::Literal
                }
                ("r" | "br" | "cr", '"' | '#') => {
                    let mut j = i;
                    while at(j) == '#' {
                        j += 1;
                    }
                    let hashes = j - i;
                    if at(j) == '"' {
                        i = skip_raw_string(&c, j + 1, hashes, &mut line);
                        Tok::Literal
                    } else if word == "r" && hashes == 1 && is_ident_start(at(j)) {
                        let start = j;
                        i = j;
                        while i < c.len() && is_ident_continue(c[i]) {
                            i += 1;
                        }
                        Tok::Ident(c[start..i].iter().collect())
                    } else {
                        Tok::Ident(word)
                    }
                }
                _ => Tok::Ident(word),
            }
        } else if ch == ':' && at(i + 1) == ':' {
            i += 2;
            Tok::PathSep
        } else {
            i += 1;
            Tok::Punct(ch)
        };
        tokens.push(Token {
            tok,
            line: start_line,
        });
    }
    tokens
}

/// Skips a string's body from just after its opening quote; returns the index
/// after its closing quote.
fn skip_string(c: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => {
                if c.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            '"' => return i + 1,
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    c.len()
}

/// Skips a raw string's body from just after its opening quote.
fn skip_raw_string(c: &[char], mut i: usize, hashes: usize, line: &mut usize) -> usize {
    while i < c.len() {
        if c[i] == '"' && (1..=hashes).all(|k| c.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        if c[i] == '\n' {
            *line += 1;
        }
        i += 1;
    }
    c.len()
}

/// At a `'`: a char literal (`'a'`, `'\''`, `'\u{1F600}'`) or a lifetime.
fn char_or_lifetime(c: &[char], i: usize) -> (usize, Tok) {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        let mut j = i + 3;
        while j < c.len() && c[j] != '\'' && c[j] != '\n' {
            j += 1;
        }
        (j + 1, Tok::Literal)
    } else if at(i + 2) == '\'' {
        (i + 3, Tok::Literal)
    } else {
        let mut j = i + 1;
        while j < c.len() && is_ident_continue(c[j]) {
            j += 1;
        }
        (j, Tok::Lifetime)
    }
}

// ---------------------------------------------------------------------------
// The scanner: the paths a file's code writes.

/// One path written in a file, before resolution.
#[derive(Clone, Debug)]
struct Reference {
    /// The inline modules (`mod x { ... }`) around it within the file.
    scope: Vec<String>,
    /// As written: `["super", "relay", "Sink"]`; `use` trees are expanded,
    /// with `self` and `*` dropped and `as` renames ignored; a leading `::`
    /// stays as a `"::"` segment.
    segments: Vec<String>,
    line: usize,
    /// The `use` item on one line, or the line of a path in code.
    text: String,
    in_use: bool,
}

#[derive(Debug, Default)]
struct Scan {
    /// The modules declared with `mod x;` outside inline modules.
    children: BTreeSet<String>,
    references: Vec<Reference>,
}

fn tok_at(tokens: &[Token], i: usize) -> Option<&Tok> {
    tokens.get(i).map(|token| &token.tok)
}

fn is_ident(tok: Option<&Tok>, word: &str) -> bool {
    matches!(tok, Some(Tok::Ident(w)) if w == word)
}

fn scan(src: &str) -> Scan {
    let tokens = lex(src);
    let lines: Vec<&str> = src.lines().collect();
    let mut scan = Scan::default();
    // One entry per open `{`: the inline module it opens, if it opens one.
    let mut braces: Vec<Option<String>> = Vec::new();
    let mut opens_module: Option<String> = None;
    let scope_of =
        |braces: &[Option<String>]| -> Vec<String> { braces.iter().flatten().cloned().collect() };
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].tok {
            Tok::Punct('#') => {
                let inner = tok_at(&tokens, i + 1) == Some(&Tok::Punct('!'));
                let open = if inner { i + 2 } else { i + 1 };
                if tok_at(&tokens, open) == Some(&Tok::Punct('[')) {
                    let close = closing(&tokens, open);
                    let cfg_test = tokens[open + 1..close.max(open + 1)]
                        .iter()
                        .map(|token| &token.tok)
                        .eq([
                            Tok::Ident("cfg".into()),
                            Tok::Punct('('),
                            Tok::Ident("test".into()),
                            Tok::Punct(')'),
                        ]
                        .iter());
                    i = close + 1;
                    if cfg_test && inner {
                        if braces.is_empty() {
                            // The whole file is test code.
                            return Scan::default();
                        }
                        i = end_of_block(&tokens, i);
                    } else if cfg_test {
                        i = skip_item(&tokens, i);
                    }
                    continue;
                }
            }
            Tok::Ident(word) if word == "mod" => {
                if let Some(Tok::Ident(name)) = tok_at(&tokens, i + 1) {
                    match tok_at(&tokens, i + 2) {
                        Some(Tok::Punct(';')) if scope_of(&braces).is_empty() => {
                            scan.children.insert(name.clone());
                        }
                        Some(Tok::Punct('{')) => opens_module = Some(name.clone()),
                        _ => {}
                    }
                    i += 2;
                    continue;
                }
            }
            // `use<'a>` in `impl Trait + use<'a>` is no `use` item.
            Tok::Ident(word)
                if word == "use" && tok_at(&tokens, i + 1) != Some(&Tok::Punct('<')) =>
            {
                let end = statement_end(&tokens, i + 1);
                let start = visibility_start(&tokens, i);
                let text = render(&tokens[start..(end + 1).min(tokens.len())]);
                let mut paths = Vec::new();
                let mut pos = 0;
                use_tree(&tokens[i + 1..end], &mut pos, &[], &mut paths);
                let scope = scope_of(&braces);
                for segments in paths {
                    scan.references.push(Reference {
                        scope: scope.clone(),
                        segments,
                        line: tokens[start].line,
                        text: text.clone(),
                        in_use: true,
                    });
                }
                i = if tok_at(&tokens, end) == Some(&Tok::Punct(';')) {
                    end + 1
                } else {
                    end
                };
                continue;
            }
            Tok::Punct('{') => braces.push(opens_module.take()),
            Tok::Punct('}') => {
                braces.pop();
            }
            Tok::Ident(_)
                if tok_at(&tokens, i + 1) == Some(&Tok::PathSep) && path_starts(&tokens, i) =>
            {
                let mut segments = Vec::new();
                let mut j = i;
                while let Some(Tok::Ident(segment)) = tok_at(&tokens, j) {
                    segments.push(segment.clone());
                    if tok_at(&tokens, j + 1) == Some(&Tok::PathSep)
                        && matches!(tok_at(&tokens, j + 2), Some(Tok::Ident(_)))
                    {
                        j += 2;
                    } else {
                        break;
                    }
                }
                let line = tokens[i].line;
                scan.references.push(Reference {
                    scope: scope_of(&braces),
                    segments,
                    line,
                    text: lines.get(line - 1).map_or("", |l| l.trim()).to_string(),
                    in_use: false,
                });
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    scan
}

/// Whether the identifier at `i` starts a path: it does not follow `::`, and
/// is not the module of a `pub(in path)` visibility.
fn path_starts(tokens: &[Token], i: usize) -> bool {
    if i == 0 {
        return true;
    }
    let previous = tok_at(tokens, i - 1);
    if previous == Some(&Tok::PathSep) || previous == Some(&Tok::Punct('.')) {
        return false;
    }
    !(is_ident(previous, "in") && i >= 2 && tok_at(tokens, i - 2) == Some(&Tok::Punct('(')))
}

fn is_open(tok: Option<&Tok>) -> bool {
    matches!(tok, Some(Tok::Punct('(' | '[' | '{')))
}

fn is_close(tok: Option<&Tok>) -> bool {
    matches!(tok, Some(Tok::Punct(')' | ']' | '}')))
}

/// The index of the bracket closing the one at `open` (or the last token).
fn closing(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().skip(open) {
        if is_open(Some(&token.tok)) {
            depth += 1;
        } else if is_close(Some(&token.tok)) {
            depth -= 1;
            if depth == 0 {
                return at;
            }
        }
    }
    tokens.len().saturating_sub(1)
}

/// From `i`, the index of the first `;` outside brackets, or of the first
/// bracket closing one opened before `i`, or the end.
fn statement_end(tokens: &[Token], i: usize) -> usize {
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().skip(i) {
        let tok = Some(&token.tok);
        if is_open(tok) {
            depth += 1;
        } else if is_close(tok) {
            if depth == 0 {
                return at;
            }
            depth -= 1;
        } else if depth == 0 && token.tok == Tok::Punct(';') {
            return at;
        }
    }
    tokens.len()
}

/// From `i`, the index of the `}` closing the block `i` is in.
fn end_of_block(tokens: &[Token], i: usize) -> usize {
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().skip(i) {
        if is_open(Some(&token.tok)) {
            depth += 1;
        } else if is_close(Some(&token.tok)) {
            if depth == 0 {
                return at;
            }
            depth -= 1;
        }
    }
    tokens.len()
}

/// Skips the item starting at `i` (after an attribute): its other
/// attributes, then up to its `;` or the `}` closing its body.
fn skip_item(tokens: &[Token], mut i: usize) -> usize {
    while tok_at(tokens, i) == Some(&Tok::Punct('#')) {
        let open = if tok_at(tokens, i + 1) == Some(&Tok::Punct('!')) {
            i + 2
        } else {
            i + 1
        };
        if tok_at(tokens, open) != Some(&Tok::Punct('[')) {
            break;
        }
        i = closing(tokens, open) + 1;
    }
    let mut depth = 0usize;
    for (at, token) in tokens.iter().enumerate().skip(i) {
        let tok = Some(&token.tok);
        if is_open(tok) {
            depth += 1;
        } else if is_close(tok) {
            if depth == 0 {
                return at;
            }
            depth -= 1;
            if depth == 0 && token.tok == Tok::Punct('}') {
                return at + 1;
            }
        } else if depth == 0 && token.tok == Tok::Punct(';') {
            return at + 1;
        }
    }
    tokens.len()
}

/// Where the `use` item whose keyword is at `i` starts: at its `pub` or
/// `pub(...)` if it has one.
fn visibility_start(tokens: &[Token], i: usize) -> usize {
    if i >= 1 && is_ident(tok_at(tokens, i - 1), "pub") {
        return i - 1;
    }
    if i >= 1 && tok_at(tokens, i - 1) == Some(&Tok::Punct(')')) {
        if let Some(open) = (0..i - 1)
            .rev()
            .find(|&k| tok_at(tokens, k) == Some(&Tok::Punct('(')))
        {
            if open >= 1 && is_ident(tok_at(tokens, open - 1), "pub") {
                return open - 1;
            }
        }
    }
    i
}

/// Tokens back to text on one line, spaced the way rustfmt writes a `use`.
fn render(tokens: &[Token]) -> String {
    let mut text = String::new();
    let mut previous: Option<&Tok> = None;
    for (at, token) in tokens.iter().enumerate() {
        // A trailing comma in a group: rustfmt drops it on one line.
        if token.tok == Tok::Punct(',') && tok_at(tokens, at + 1) == Some(&Tok::Punct('}')) {
            continue;
        }
        let word = |tok: &Tok| matches!(tok, Tok::Ident(_) | Tok::Literal | Tok::Lifetime);
        if let Some(previous) = previous {
            let space = (word(previous) && word(&token.tok))
                || (*previous == Tok::Punct(',') && token.tok != Tok::Punct('}'))
                || (*previous == Tok::Punct(')') && word(&token.tok));
            if space {
                text.push(' ');
            }
        }
        match &token.tok {
            Tok::Ident(name) => text.push_str(name),
            Tok::PathSep => text.push_str("::"),
            Tok::Punct(c) => text.push(*c),
            Tok::Literal => text.push_str("\"..\""),
            Tok::Lifetime => text.push_str("'_"),
        }
        previous = Some(&token.tok);
    }
    text
}

/// Reads one use tree from `tokens[*pos..]`, appending the paths it names
/// (under `prefix`) to `out`.
fn use_tree(tokens: &[Token], pos: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    if path.is_empty() && tok_at(tokens, *pos) == Some(&Tok::PathSep) {
        path.push("::".to_string());
        *pos += 1;
    }
    loop {
        match tok_at(tokens, *pos) {
            Some(Tok::Ident(name)) => {
                path.push(name.clone());
                *pos += 1;
                if tok_at(tokens, *pos) == Some(&Tok::PathSep) {
                    *pos += 1;
                    continue;
                }
                if is_ident(tok_at(tokens, *pos), "as") {
                    *pos += 2;
                }
                emit_use_path(path, out);
                return;
            }
            Some(Tok::Punct('*')) => {
                *pos += 1;
                emit_use_path(path, out);
                return;
            }
            Some(Tok::Punct('{')) => {
                *pos += 1;
                loop {
                    match tok_at(tokens, *pos) {
                        None => return,
                        Some(Tok::Punct('}')) => {
                            *pos += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *pos += 1,
                        Some(_) => {
                            let before = *pos;
                            use_tree(tokens, pos, &path, out);
                            if *pos == before {
                                *pos += 1;
                            }
                        }
                    }
                }
            }
            _ => return,
        }
    }
}

fn emit_use_path(mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    if path.len() > 1 && path.last().map(String::as_str) == Some("self") {
        path.pop();
    }
    if !path.is_empty() {
        out.push(path);
    }
}

// ---------------------------------------------------------------------------
// Tests of the test.

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(|segment| {
            if segment.is_empty() {
                "::".to_string()
            } else {
                segment.to_string()
            }
        })
        .collect()
}

fn use_paths(src: &str) -> Vec<String> {
    scan(src)
        .references
        .iter()
        .filter(|reference| reference.in_use)
        .map(|reference| reference.segments.join("::"))
        .collect()
}

fn code_paths(src: &str) -> Vec<String> {
    scan(src)
        .references
        .iter()
        .filter(|reference| !reference.in_use)
        .map(|reference| reference.segments.join("::"))
        .collect()
}

#[test]
fn use_trees_are_expanded() {
    let src = "
        use crate::{
            a::{self, b::{C, D as E}},
            f::*,
        };
        use super::super::g::H as _;
        pub(crate) use self::inner::{J, k::{self as kay}};
        pub use lifecycle::Session;
        use std::io; use ::ext::L;
        use {crate::m, super::n};
        fn f() -> impl Sized + use<> {}
    ";
    assert_eq!(
        use_paths(src),
        [
            "crate::a",
            "crate::a::b::C",
            "crate::a::b::D",
            "crate::f",
            "super::super::g::H",
            "self::inner::J",
            "self::inner::k",
            "lifecycle::Session",
            "std::io",
            "::::ext::L",
            "crate::m",
            "super::n",
        ]
    );
    let scanned = scan(src);
    let first = &scanned.references[0];
    assert_eq!(first.line, 2);
    assert_eq!(first.text, "use crate::{a::{self, b::{C, D as E}}, f::*};");
    let renamed = scanned
        .references
        .iter()
        .find(|reference| reference.segments == segments("self::inner::J"))
        .unwrap();
    assert_eq!(renamed.line, 7);
    assert_eq!(
        renamed.text,
        "pub(crate) use self::inner::{J, k::{self as kay}};"
    );
}

#[test]
fn comments_literals_and_test_code_are_skipped() {
    let src = r####"
        // use crate::line_comment;
        /// use crate::doc_comment; [link](crate::doc_link)
        /* use crate::block; /* nested */ use crate::still_block; */
        fn f<'a>(x: &'a str) -> char {
            let s = "crate::in_string::f() \" crate::escaped";
            let r = r#"use crate::raw; "crate::quoted""#;
            let b = b"crate::bytes";
            let c = '"';
            let q = '\'';
            let real = crate::real::call(super::up::f(), x);
            let nested = Vec::<crate::generic::T>::new();
            let lifetime: &'a str = self::own::g();
            c
        }
        pub(in crate::visibility) fn g() {}
        #[cfg(test)]
        mod tests {
            use super::*;
            use crate::test_only;
            fn t() { crate::test_code::f(); }
        }
        #[cfg(test)]
        use crate::test_use;
        mod inner {
            use super::sibling;
            fn h() { self::h(); }
        }
        #[cfg(not(test))]
        use crate::kept;
    "####;
    assert_eq!(use_paths(src), ["super::sibling", "crate::kept"]);
    assert_eq!(
        code_paths(src),
        [
            "crate::real::call",
            "super::up::f",
            "Vec",
            "crate::generic::T",
            "self::own::g",
            "self::h",
        ]
    );
    let scanned = scan(src);
    let sibling = scanned
        .references
        .iter()
        .find(|reference| reference.segments == segments("super::sibling"))
        .unwrap();
    assert_eq!(sibling.scope, ["inner"]);
    let real = scanned
        .references
        .iter()
        .find(|reference| reference.segments[0] == "crate")
        .unwrap();
    assert_eq!(real.line, 11);
    assert_eq!(
        real.text,
        "let real = crate::real::call(super::up::f(), x);"
    );
    assert!(scan("#![cfg(test)]\nuse crate::x;\n").references.is_empty());
}

#[test]
fn paths_resolve_to_modules() {
    let file = segments("a::b");
    let children = BTreeSet::from(["child".to_string()]);
    let resolve_str = |scope: &[&str], path: &str| {
        let scope: Vec<String> = scope.iter().map(|s| s.to_string()).collect();
        resolve(&file, &scope, &segments(path), &children).map(|module| module.join("::"))
    };
    assert_eq!(resolve_str(&[], "crate::x::Y").as_deref(), Some("x::Y"));
    assert_eq!(resolve_str(&[], "super::c").as_deref(), Some("a::c"));
    assert_eq!(resolve_str(&[], "super::super::d").as_deref(), Some("d"));
    assert_eq!(resolve_str(&[], "super::super::super::d"), None);
    assert_eq!(resolve_str(&[], "self::e").as_deref(), Some("a::b::e"));
    assert_eq!(
        resolve_str(&[], "child::F").as_deref(),
        Some("a::b::child::F")
    );
    assert_eq!(resolve_str(&["inner"], "child::F"), None);
    assert_eq!(
        resolve_str(&["inner"], "super::G").as_deref(),
        Some("a::b::G")
    );
    assert_eq!(resolve_str(&[], "std::io"), None);
    assert_eq!(resolve_str(&[], "::ext::L"), None);

    assert_eq!(module_of("lib.rs"), Vec::<String>::new());
    assert_eq!(module_of("main.rs"), Vec::<String>::new());
    assert_eq!(module_of("a.rs"), ["a"]);
    assert_eq!(module_of("a/mod.rs"), ["a"]);
    assert_eq!(module_of("a/b.rs"), ["a", "b"]);
    assert_eq!(module_of("a/main.rs"), ["a", "main"]);
}

/// A made-up crate, as `(path under src, text)`.
fn made_up(files: &[(&str, &str)]) -> Graph {
    let files: Vec<SourceFile> = files
        .iter()
        .map(|(rel, text)| SourceFile {
            display: format!("demo/src/{rel}"),
            module: module_of(rel),
            text: text.to_string(),
        })
        .collect();
    build_graph(&files)
}

#[test]
fn imports_go_to_the_longest_file_prefix() {
    let graph = made_up(&[
        (
            "lib.rs",
            "mod backend; mod session; pub use backend::Lease;",
        ),
        ("backend/mod.rs", "pub mod server; pub use server::Lease;"),
        ("backend/server.rs", "pub struct Lease; use super::Helper;"),
        (
            "session/mod.rs",
            "mod relay;\nfn f() { relay::go(); }\n#[cfg(test)]\nmod tests { use super::*; }",
        ),
        (
            "session/relay.rs",
            "use crate::backend::server::Lease;\nuse crate::backend::{self, Other};\n\
             pub fn go() { crate::session::relay::go(); }",
        ),
    ]);
    let edges: Vec<String> = graph
        .iter()
        .flat_map(|(from, to)| {
            to.iter()
                .map(move |(to, evidence)| format!("{from} -> {to} ({})", evidence.text))
        })
        .collect();
    assert_eq!(
        edges,
        [
            "demo/src/backend/mod.rs -> demo/src/backend/server.rs (pub use server::Lease;)",
            "demo/src/backend/server.rs -> demo/src/backend/mod.rs (use super::Helper;)",
            "demo/src/lib.rs -> demo/src/backend/mod.rs (pub use backend::Lease;)",
            "demo/src/session/mod.rs -> demo/src/session/relay.rs (fn f() { relay::go(); })",
            "demo/src/session/relay.rs -> demo/src/backend/mod.rs \
             (use crate::backend::{self, Other};)",
            "demo/src/session/relay.rs -> demo/src/backend/server.rs \
             (use crate::backend::server::Lease;)",
        ]
    );
}

#[test]
fn the_cycle_finder_finds_made_up_cycles() {
    let edge = |text: &str| Evidence {
        line: 1,
        text: text.to_string(),
    };
    let mut graph = Graph::new();
    for (from, to) in [
        ("a", "b"),
        ("b", "c"),
        ("c", "a"),
        ("c", "b"),
        ("d", "a"),
        ("a", "a"),
        ("e", "f"),
        ("f", "g"),
        ("g", "f"),
    ] {
        graph
            .entry(from.to_string())
            .or_default()
            .insert(to.to_string(), edge(&format!("use {to};")));
    }
    let components = strongly_connected(&graph);
    assert_eq!(components, [vec!["a", "b", "c"], vec!["f", "g"]]);
    assert_eq!(
        cycles_in(&graph, &components[0]),
        [vec!["b", "c", "b"], vec!["a", "b", "c", "a"]]
    );
    let report = cycle_report(&graph).unwrap();
    assert!(report.contains("  a -> b -> c -> a\n"), "{report}");
    assert!(report.contains("  f -> g -> f\n"), "{report}");
    assert!(report.contains("      c:1: use a;\n"), "{report}");
    assert!(!report.contains(" d "), "{report}");

    graph.remove("c");
    graph.remove("g");
    assert_eq!(strongly_connected(&graph), Vec::<Vec<String>>::new());
    assert!(cycle_report(&graph).is_none());
}

#[test]
#[should_panic(expected = "demo/src/a.rs -> demo/src/b.rs -> demo/src/a.rs\n      \
                           demo/src/a.rs:2: use crate::b::{Thing, \
                           other};\n      demo/src/b.rs:1: let x = super::a::f();")]
fn a_made_up_crate_with_a_cycle_fails() {
    let graph = made_up(&[
        ("lib.rs", "mod a;\nmod b;\n"),
        (
            "a.rs",
            "// a\nuse crate::b::{\n    Thing,\n    other,\n};\n",
        ),
        ("b.rs", "let x = super::a::f();\n"),
    ]);
    if let Some(report) = cycle_report(&graph) {
        panic!("{report}");
    }
}
