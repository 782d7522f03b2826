//! The command line beside the service: `datum-edge serve` listens on a local socket, and a command run on
//! the same machine goes through it instead of opening the data directory (which only the service account
//! may write).
//!
//! The service reads the caller's uid from the kernel (`SO_PEERCRED`), never from the request, and runs the
//! command as a child process of its own (the service account), with that uid's login as the OS account
//! acting: `datum-edge user add NAME --os-user LOGIN` maps it to a person, `DATUM_TOKEN` acts as a token's
//! user, and `--actor` is refused for writes once the site has users, as everywhere. The child's standard
//! streams are relayed over the socket. Files named on the command line are read by the caller, with the
//! caller's permissions, and sent; an output file (`--out FILE`) is written by the caller from the child's
//! standard output (temporary file, then rename, only when the command succeeded). An evidence pack
//! (`report --out DIR`) comes the same way as a ZIP (`report --out -`), which the caller checks and unpacks
//! into DIR, whole or not at all.
//!
//! The wire format is frames of `[kind: u8][length: u32 big-endian][payload]`, at most [`MAX_FRAME`] bytes of
//! payload: the caller sends `Request` (JSON), then each file as `File` pieces and `FileEnd`, then its
//! standard input as `Stdin` and `StdinEnd`; the service answers `Stdout`, `Stderr` and one `Exit`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::cli::{AssetCmd, Cli, Command, ConfigCmd, RestoreTestCmd};
use datum_host::exit::{self, user};

/// Where the installed service listens (`RuntimeDirectory=datum-edge` in its unit).
pub const DEFAULT_SOCKET: &str = "/run/datum-edge/cli.sock";
/// The login the service read from the caller's credentials, for the child it runs.
const BROKER_LOGIN: &str = "DATUM_BROKER_LOGIN";
/// Largest payload of one frame.
pub const MAX_FRAME: usize = 1 << 20;
const MAX_REQUEST: usize = 64 * 1024;
const MAX_FILES: usize = 4;
/// Commands running through the socket at once; more callers are told the service is busy.
const MAX_SESSIONS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Request(Vec<u8>),
    File(Vec<u8>),
    FileEnd,
    Stdin(Vec<u8>),
    StdinEnd,
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(u8),
}

impl Frame {
    fn kind(&self) -> u8 {
        match self {
            Frame::Request(_) => 1,
            Frame::File(_) => 2,
            Frame::FileEnd => 3,
            Frame::Stdin(_) => 4,
            Frame::StdinEnd => 5,
            Frame::Stdout(_) => 6,
            Frame::Stderr(_) => 7,
            Frame::Exit(_) => 8,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let payload: &[u8] = match self {
            Frame::Request(p) | Frame::File(p) | Frame::Stdin(p) | Frame::Stdout(p) | Frame::Stderr(p) => p,
            Frame::FileEnd | Frame::StdinEnd => &[],
            Frame::Exit(code) => std::slice::from_ref(code),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(self.kind());
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// One frame from the front of `buf` and the bytes it took, or `None` when more bytes are needed. A length
    /// over [`MAX_FRAME`] is refused from the header alone, so a reader never buffers more than one frame.
    pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
        let Some(header) = buf.get(..5) else { return Ok(None) };
        let kind = header[0];
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > MAX_FRAME {
            return Err(format!("frame of {len} bytes (at most {MAX_FRAME})"));
        }
        let Some(payload) = buf.get(5..5 + len) else { return Ok(None) };
        let empty =
            |frame: Frame| if len == 0 { Ok(frame) } else { Err(format!("frame kind {kind} carries no payload")) };
        let frame = match kind {
            1 => Frame::Request(payload.to_vec()),
            2 => Frame::File(payload.to_vec()),
            3 => empty(Frame::FileEnd)?,
            4 => Frame::Stdin(payload.to_vec()),
            5 => empty(Frame::StdinEnd)?,
            6 => Frame::Stdout(payload.to_vec()),
            7 => Frame::Stderr(payload.to_vec()),
            8 if len == 1 => Frame::Exit(payload[0]),
            8 => return Err("an exit frame carries one byte".into()),
            other => return Err(format!("unknown frame kind {other}")),
        };
        Ok(Some((frame, 5 + len)))
    }
}

/// Reads frames from a stream. Cancel-safe: bytes read stay in the buffer.
struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(inner: R) -> Self {
        FrameReader { inner, buf: Vec::new() }
    }

    /// The next frame, or `None` at the end of the stream between frames.
    async fn next(&mut self) -> Result<Option<Frame>> {
        loop {
            if let Some((frame, used)) = Frame::decode(&self.buf).map_err(|e| anyhow!("bad frame: {e}"))? {
                self.buf.drain(..used);
                return Ok(Some(frame));
            }
            let mut chunk = vec![0; 64 * 1024];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                bail!("the connection ended inside a frame");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

async fn send(w: &mut (impl AsyncWrite + Unpin), frame: &Frame) -> std::io::Result<()> {
    w.write_all(&frame.encode()).await
}

/// What the caller asks the service to run.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The command line after the program name.
    pub args: Vec<String>,
    /// The caller's working directory (used when the service can see it).
    pub cwd: Option<String>,
    /// `DATUM_TOKEN` of the caller.
    pub token: Option<String>,
    /// The files sent after the request, in order.
    pub files: Vec<FileArg>,
}

/// A file named on the command line: the argument it replaces (`prefix` kept, as in `--evidence=`) and its
/// file name (format detection reads the extension).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileArg {
    pub arg: usize,
    pub prefix: String,
    pub name: String,
}

/// The socket to go through, when this command should: not for `serve` or `diff` (which acts on nothing),
/// not when a data directory is named (`--data`, `DATUM_DATA`), and only when `DATUM_SOCKET` names one or the
/// installed service's socket exists.
pub fn socket_for(cli: &Cli) -> Option<PathBuf> {
    if matches!(cli.command, Command::Serve { .. } | Command::Diff { .. } | Command::Report { check: Some(_), .. })
        || cli.data.is_some()
    {
        return None;
    }
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if set("DATUM_DATA").is_some() || std::env::var_os(BROKER_LOGIN).is_some() {
        return None;
    }
    match set("DATUM_SOCKET") {
        Some(path) => Some(PathBuf::from(path)),
        None => Path::new(DEFAULT_SOCKET).exists().then(|| PathBuf::from(DEFAULT_SOCKET)),
    }
}

/// The login the service verified for this process, when this process is a command the service runs: the
/// variable is believed only by a process of the account that owns the data directory (the service
/// account, which can rewrite that directory anyway). `Some(None)`: the caller's uid has no login.
pub fn verified_login(data: &Path) -> Option<Option<String>> {
    let login = std::env::var(BROKER_LOGIN).ok()?;
    let owner = std::fs::metadata(data).ok()?.uid();
    (owner == datum_host::process::euid()).then(|| Some(login).filter(|l| !l.is_empty()))
}

/// What a command writes on the caller's side.
#[derive(Debug, Clone, Copy)]
enum Output<'a> {
    None,
    /// `--out FILE`: the child's standard output.
    File(&'a Path),
    /// `report --out DIR [--zip]`: the child's standard output is the pack as a ZIP, unpacked into DIR.
    Pack {
        dir: &'a Path,
        zip: bool,
    },
}

/// The files a command reads (sent by the caller) and what it writes (`--out`, written by the caller).
fn transfers(command: &Command) -> (Vec<&Path>, Output<'_>) {
    match command {
        Command::Config(ConfigCmd::Capture { file, .. }) | Command::Asset(AssetCmd::Import { file, .. }) => {
            (vec![file.as_path()], Output::None)
        }
        // A template file to try out (an assigned template's id names no file here).
        Command::Compliance { template: Some(file), .. } if file.is_file() => (vec![file.as_path()], Output::None),
        Command::RestoreTest(RestoreTestCmd::Record { evidence: Some(file), .. }) => {
            (vec![file.as_path()], Output::None)
        }
        Command::Dump { out, .. } | Command::Config(ConfigCmd::Export { out, .. }) => {
            (vec![], Output::File(out.as_path()))
        }
        Command::Report { check: None, out: Some(dir), zip, .. } if dir.as_os_str() != "-" => {
            (vec![], Output::Pack { dir: dir.as_path(), zip: *zip })
        }
        _ => (vec![], Output::None),
    }
}

/// Unpacks the pack the service sent as a ZIP into the caller's `target`: every entry under one folder, every
/// path plain, then written whole or not at all (`datum_host::evidence::write`).
fn unpack(zip: &[u8], target: &datum_host::evidence::Target) -> Result<usize> {
    let entries = datum_host::zip::read(zip).map_err(|e| anyhow!("the evidence pack the service sent: {e}"))?;
    let mut files = Vec::with_capacity(entries.len());
    for (name, bytes) in entries {
        let inner = name.split_once('/').map(|(_, rest)| rest).filter(|rest| datum_host::evidence::safe_path(rest));
        let inner = inner.ok_or_else(|| anyhow!("the evidence pack the service sent names {name:?}"))?;
        files.push((inner.to_string(), bytes));
    }
    datum_host::evidence::write(&files, target, chrono::Utc::now())?;
    Ok(files.len())
}

/// Where `path` stands among the arguments: the last one equal to it, or `--flag=PATH`.
fn locate(args: &[String], path: &Path) -> Option<(usize, String)> {
    let path = path.to_str()?;
    args.iter().enumerate().rev().find_map(|(i, a)| {
        if a == path {
            Some((i, String::new()))
        } else {
            a.strip_suffix(path)
                .filter(|prefix| prefix.starts_with("--") && prefix.ends_with('='))
                .map(|prefix| (i, prefix.to_string()))
        }
    })
}

/// Runs the command through the service and returns its exit code.
pub async fn call(socket: &Path, cli: &Cli) -> ExitCode {
    match call_inner(socket, cli).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => exit::finish(Err(e)),
    }
}

async fn call_inner(socket: &Path, cli: &Cli) -> Result<u8> {
    let mut args = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string().map_err(|a| user(format!("the argument {a:?} is not UTF-8"))))
        .collect::<Result<Vec<String>, _>>()?;
    let (inputs, output) = transfers(&cli.command);
    let mut files = Vec::new();
    let mut opened = Vec::new();
    for path in inputs {
        let (arg, prefix) =
            locate(&args, path).ok_or_else(|| user(format!("{} is not among the arguments", path.display())))?;
        let file = tokio::fs::File::open(path).await.map_err(|e| user(format!("read {}: {e}", path.display())))?;
        if !file.metadata().await?.is_file() {
            return Err(user(format!("{} is not a file", path.display())));
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "file".into());
        files.push(FileArg { arg, prefix, name });
        opened.push(file);
    }
    let mut out_file = None;
    let (out, pack) = match output {
        Output::None => (None, None),
        Output::File(out) => (Some(out).filter(|o| o.as_os_str() != "-"), None),
        // Checked before the service does any work, so that a wrong name costs nothing.
        Output::Pack { dir, zip } => (Some(dir), Some(datum_host::evidence::target(dir, zip)?)),
    };
    if let Some(out) = out {
        let (arg, prefix) =
            locate(&args, out).ok_or_else(|| user(format!("{} is not among the arguments", out.display())))?;
        args[arg] = format!("{prefix}-");
        let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let temp = tempfile::Builder::new()
            .prefix(".datum-out-")
            .tempfile_in(dir)
            .map_err(|e| user(format!("write {}: {e}", out.display())))?;
        out_file = Some((temp, out.to_path_buf()));
    }
    let request = Request {
        args,
        cwd: std::env::current_dir().ok().and_then(|d| d.to_str().map(str::to_string)),
        token: std::env::var("DATUM_TOKEN").ok().filter(|v| !v.is_empty()),
        files,
    };
    let stream = UnixStream::connect(socket).await.map_err(|e| {
        user(format!(
            "the datum-edge service does not answer on {} ({e}): is it running? (`systemctl status datum-edge`); \
             to work on a data directory directly, give --data",
            socket.display()
        ))
    })?;
    let (rd, mut wr) = stream.into_split();
    send(&mut wr, &Frame::Request(serde_json::to_vec(&request)?)).await?;
    for mut file in opened {
        let mut piece = vec![0; 256 * 1024];
        loop {
            let n = file.read(&mut piece).await?;
            if n == 0 {
                break;
            }
            send(&mut wr, &Frame::File(piece[..n].to_vec())).await?;
        }
        send(&mut wr, &Frame::FileEnd).await?;
    }
    // Standard input is read on a thread of its own: a terminal read cannot be cancelled, and a runtime
    // waits for its blocking tasks when it shuts down.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Vec<u8>>>(4);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    tokio::spawn(async move {
        while let Some(piece) = rx.recv().await {
            let frame = match piece {
                Some(data) => Frame::Stdin(data),
                None => Frame::StdinEnd,
            };
            let end = frame == Frame::StdinEnd;
            if send(&mut wr, &frame).await.is_err() || end {
                break;
            }
        }
        // The write half stays open until the answer is read: dropping it would end the request.
        std::future::pending::<()>().await;
    });
    let mut reader = FrameReader::new(rd);
    // The caller's own terminal or pipe: plain blocking writes, as any command's output.
    use std::io::Write as _;
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let mut out_writer = match &out_file {
        Some((temp, _)) => Some(tokio::fs::File::from_std(temp.reopen()?)),
        None => None,
    };
    loop {
        match reader.next().await? {
            Some(Frame::Stdout(data)) => match &mut out_writer {
                Some(file) => file.write_all(&data).await?,
                None => {
                    stdout.write_all(&data)?;
                    stdout.flush()?;
                }
            },
            Some(Frame::Stderr(data)) => {
                stderr.write_all(&data)?;
                stderr.flush()?;
            }
            Some(Frame::Exit(code)) => {
                if let (Some(mut file), Some((temp, out))) = (out_writer.take(), out_file.take()) {
                    if code == 0 {
                        file.flush().await?;
                        file.sync_all().await?;
                        match &pack {
                            Some(target) => {
                                let n = unpack(&std::fs::read(temp.path())?, target)?;
                                println!(
                                    "wrote {}{} ({n} files); open index.html, check with `datum-edge report verify {}`",
                                    out.display(),
                                    target.zip.as_ref().map(|z| format!(" and {}", z.display())).unwrap_or_default(),
                                    out.display()
                                );
                            }
                            None => {
                                temp.persist(&out).map_err(|e| anyhow!("write {}: {}", out.display(), e.error))?;
                            }
                        }
                    }
                }
                return Ok(code);
            }
            Some(other) => bail!("the service sent an unexpected frame ({other:?})"),
            None => bail!("the service closed the connection before the command ended"),
        }
    }
}

/// Binds the service's socket: a stale socket file from a killed service is replaced; anything else at the
/// path is an error. Every local account may connect (the kernel tells who it is; unmapped accounts are
/// refused by the command itself).
pub fn listen(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => return Err(user(format!("{} exists and is not a socket", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("inspect {}", path.display())),
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    let listener = UnixListener::bind(path).with_context(|| format!("listen on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}

/// Accepts callers for the life of the service.
pub async fn run(listener: UnixListener, data: PathBuf) {
    let data = Arc::new(data);
    let sessions = Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS));
    loop {
        let mut stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("local socket: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = sessions.clone().try_acquire_owned() else {
            let busy = format!("error: the service is running {MAX_SESSIONS} commands already; try again\n");
            tokio::spawn(async move {
                let _ = send(&mut stream, &Frame::Stderr(busy.into_bytes())).await;
                let _ = send(&mut stream, &Frame::Exit(3)).await;
            });
            continue;
        };
        let data = data.clone();
        tokio::spawn(async move {
            if let Err(e) = session(stream, &data).await {
                tracing::warn!("local socket: {e:#}");
            }
            drop(permit);
        });
    }
}

/// Why a request is not run: the text for the caller's standard error (or output, for `--help`) and the
/// exit code.
#[derive(Debug)]
struct Refusal {
    text: String,
    code: u8,
    to_stdout: bool,
}

impl Refusal {
    fn usage(text: impl Into<String>) -> Refusal {
        Refusal { text: format!("error: {}\n", text.into()), code: 2, to_stdout: false }
    }
}

/// Checks a request before anything runs: it parses as a command line; no other data directory; not a
/// command that makes or replaces one, nor a second service; the files it announces are well-formed.
fn vet(request: &Request) -> Result<(), Refusal> {
    let parsed = Cli::try_parse_from(std::iter::once("datum-edge".to_string()).chain(request.args.iter().cloned()));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            return Err(Refusal {
                text: e.render().to_string(),
                code: u8::try_from(e.exit_code()).unwrap_or(2),
                to_stdout: !e.use_stderr(),
            })
        }
    };
    if cli.data.is_some() {
        return Err(Refusal::usage(
            "--data is not accepted through the service's socket: the service works on its own data directory",
        ));
    }
    let name = match cli.command {
        Command::Serve { .. } => Some("serve"),
        Command::Init { .. } => Some("init"),
        Command::RestoreDump { .. } => Some("restore-dump"),
        Command::RestoreFromHub { .. } => Some("restore-from-hub"),
        _ => None,
    };
    if let Some(name) = name {
        return Err(Refusal::usage(format!(
            "`{name}` is not run through the service: run it as the service account with the service stopped \
             (`sudo -u datum datum-edge {name} …`)"
        )));
    }
    if request.files.len() > MAX_FILES {
        return Err(Refusal::usage(format!("at most {MAX_FILES} files per command")));
    }
    for f in &request.files {
        let plain = !f.name.is_empty()
            && f.name.len() <= 255
            && f.name != "."
            && f.name != ".."
            && !f.name.contains(['/', '\0']);
        if f.arg >= request.args.len() || !plain {
            return Err(Refusal::usage(format!("bad file announcement {f:?}")));
        }
    }
    Ok(())
}

async fn refuse(w: &mut (impl AsyncWrite + Unpin), refusal: Refusal) -> Result<()> {
    let text = refusal.text.into_bytes();
    send(w, &if refusal.to_stdout { Frame::Stdout(text) } else { Frame::Stderr(text) }).await?;
    send(w, &Frame::Exit(refusal.code)).await?;
    Ok(())
}

/// One caller: who it is (from the kernel), its request, its files, then the command as a child process with
/// its streams relayed until it exits. A caller that goes away ends its command.
async fn session(stream: UnixStream, data: &Path) -> Result<()> {
    let uid = stream.peer_cred()?.uid();
    let login = datum_host::process::login_of(uid);
    let (rd, mut wr) = stream.into_split();
    let mut reader = FrameReader::new(rd);
    let first = tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .map_err(|_| anyhow!("uid {uid}: no request within 10 s"))??;
    let request: Request = match first {
        Some(Frame::Request(body)) if body.len() <= MAX_REQUEST => match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return refuse(&mut wr, Refusal::usage(format!("malformed request: {e}"))).await,
        },
        Some(Frame::Request(_)) => return refuse(&mut wr, Refusal::usage("the command line is too long")).await,
        Some(_) => return refuse(&mut wr, Refusal::usage("expected a request first")).await,
        None => return Ok(()),
    };
    if let Err(refusal) = vet(&request) {
        return refuse(&mut wr, refusal).await;
    }
    let tmp_root = data.join("tmp");
    std::fs::create_dir_all(&tmp_root)?;
    let tmp = tempfile::Builder::new().prefix("cli-").tempdir_in(&tmp_root)?;
    let mut args = request.args.clone();
    for (i, f) in request.files.iter().enumerate() {
        let dir = tmp.path().join(i.to_string());
        std::fs::create_dir(&dir)?;
        let path = dir.join(&f.name);
        let mut file = tokio::fs::File::create(&path).await?;
        let mut size = 0usize;
        loop {
            match tokio::time::timeout(Duration::from_secs(60), reader.next()).await {
                Ok(Ok(Some(Frame::File(piece)))) => {
                    size += piece.len();
                    if size > crate::web::MAX_UPLOAD {
                        let limit = crate::web::MAX_UPLOAD / (1024 * 1024);
                        return refuse(&mut wr, Refusal::usage(format!("{} is larger than {limit} MiB", f.name))).await;
                    }
                    file.write_all(&piece).await?;
                }
                Ok(Ok(Some(Frame::FileEnd))) => break,
                Ok(Ok(_)) => return refuse(&mut wr, Refusal::usage("the file ended early")).await,
                Ok(Err(e)) => return Err(e),
                Err(_) => bail!("uid {uid}: a file stalled for 60 s"),
            }
        }
        file.flush().await?;
        args[f.arg] = format!("{}{}", f.prefix, path.display());
    }
    tracing::info!(uid, login = login.as_deref().unwrap_or("?"), command = %request.args.first().map(String::as_str).unwrap_or(""), "command through the local socket");
    let cwd = request.cwd.as_deref().map(Path::new).filter(|d| d.is_dir()).unwrap_or(Path::new("/"));
    let mut command = tokio::process::Command::new("/proc/self/exe");
    command
        .args(&args)
        .env_clear()
        .env("DATUM_DATA", data)
        .env(BROKER_LOGIN, login.unwrap_or_default())
        .current_dir(cwd)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(token) = &request.token {
        command.env("DATUM_TOKEN", token);
    }
    if let Some(filter) = std::env::var_os("DATUM_LOG") {
        command.env("DATUM_LOG", filter);
    }
    let mut child = command.spawn().context("start the command")?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Frame>(16);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if send(&mut wr, &frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let pump = |out: Option<Box<dyn AsyncRead + Unpin + Send>>, wrap: fn(Vec<u8>) -> Frame| {
        let tx = tx.clone();
        tokio::spawn(async move {
            let Some(mut out) = out else { return };
            let mut buf = vec![0; 64 * 1024];
            while let Ok(n) = out.read(&mut buf).await {
                if n == 0 || tx.send(wrap(buf[..n].to_vec())).await.is_err() {
                    break;
                }
            }
        })
    };
    let out_pump = pump(child.stdout.take().map(|s| Box::new(s) as _), Frame::Stdout);
    let err_pump = pump(child.stderr.take().map(|s| Box::new(s) as _), Frame::Stderr);
    let mut stdin = child.stdin.take();
    enum Event {
        Exited(std::io::Result<std::process::ExitStatus>),
        Frame(Result<Option<Frame>>),
    }
    let status = loop {
        let event = tokio::select! {
            status = child.wait() => Event::Exited(status),
            frame = reader.next() => Event::Frame(frame),
        };
        match event {
            Event::Exited(status) => break status?,
            Event::Frame(Ok(Some(Frame::Stdin(data)))) => {
                if let Some(pipe) = &mut stdin {
                    if pipe.write_all(&data).await.is_err() {
                        stdin = None;
                    }
                }
            }
            Event::Frame(Ok(Some(Frame::StdinEnd))) => stdin = None,
            Event::Frame(other) => {
                // The caller went away (or broke the protocol): its command ends with it.
                let _ = child.kill().await;
                return match other {
                    Ok(None) => Ok(()),
                    Ok(Some(frame)) => Err(anyhow!("uid {uid}: unexpected frame {frame:?}")),
                    Err(e) => Err(e),
                };
            }
        }
    };
    drop(stdin);
    let _ = out_pump.await;
    let _ = err_pump.await;
    let code = status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(3);
    let _ = tx.send(Frame::Exit(code)).await;
    drop(tx);
    let _ = writer.await;
    drop(tmp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused_from_the_header() {
        let frames = [
            Frame::Request(b"{}".to_vec()),
            Frame::File(vec![0; 1000]),
            Frame::FileEnd,
            Frame::Stdin(b"secret\n".to_vec()),
            Frame::StdinEnd,
            Frame::Stdout(vec![]),
            Frame::Stderr(b"x".to_vec()),
            Frame::Exit(2),
        ];
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend(f.encode());
        }
        let mut got = Vec::new();
        let mut at = 0;
        while let Some((frame, used)) = Frame::decode(&wire[at..]).expect("valid") {
            got.push(frame);
            at += used;
        }
        assert_eq!(got, frames);
        assert_eq!(at, wire.len());
        // Every prefix of a frame asks for more bytes; none is misread.
        let one = Frame::Stdout(b"hello".to_vec()).encode();
        for cut in 0..one.len() {
            assert_eq!(Frame::decode(&one[..cut]), Ok(None), "cut at {cut}");
        }
        let huge = [6, 0xff, 0xff, 0xff, 0xff];
        assert!(Frame::decode(&huge).is_err(), "a 4 GiB length is refused before any payload");
        assert!(Frame::decode(&[9, 0, 0, 0, 0]).is_err(), "unknown kind");
        assert!(Frame::decode(&[3, 0, 0, 0, 1, 0]).is_err(), "FileEnd with a payload");
        assert!(Frame::decode(&[8, 0, 0, 0, 2, 0, 0]).is_err(), "exit with two bytes");
    }

    #[test]
    fn file_arguments_are_found_positional_or_after_an_equals_sign() {
        let args: Vec<String> =
            ["restore-test", "record", "plc1", "--evidence=photo.jpg", "--version", "1"].map(String::from).to_vec();
        assert_eq!(locate(&args, Path::new("photo.jpg")), Some((3, "--evidence=".into())));
        let args: Vec<String> = ["config", "capture", "fw1", "fw1"].map(String::from).to_vec();
        assert_eq!(locate(&args, Path::new("fw1")), Some((3, String::new())), "the file comes after the asset");
        assert_eq!(locate(&args, Path::new("other")), None);
        let args: Vec<String> = ["x", "not-a-flag=a.cfg"].map(String::from).to_vec();
        assert_eq!(locate(&args, Path::new("a.cfg")), None);
    }

    #[test]
    fn the_service_refuses_other_data_directories_site_making_commands_and_bad_file_names() {
        let req = |args: &[&str]| Request { args: args.iter().map(|a| a.to_string()).collect(), ..Request::default() };
        assert!(vet(&req(&["asset", "list"])).is_ok());
        for args in [
            &["--data", "/tmp/x", "asset", "list"][..],
            &["serve"],
            &["init", "--site", "x"],
            &["restore-dump", "f"],
            &["asset", "frobnicate"],
        ] {
            let refusal = vet(&req(args)).expect_err("refused");
            assert_eq!(refusal.code, 2, "{args:?}: {}", refusal.text);
        }
        let help = vet(&req(&["--help"])).expect_err("help is printed, not run");
        assert_eq!((help.code, help.to_stdout), (0, true));
        for name in ["", "..", "a/b", "x\0y"] {
            let mut r = req(&["config", "capture", "plc1", "f"]);
            r.files = vec![FileArg { arg: 3, prefix: String::new(), name: name.into() }];
            assert!(vet(&r).is_err(), "{name:?}");
        }
        let mut r = req(&["config", "capture", "plc1", "f"]);
        r.files = vec![FileArg { arg: 9, prefix: String::new(), name: "f".into() }];
        assert!(vet(&r).is_err(), "an argument that does not exist");
    }
}
