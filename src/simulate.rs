//! `leadhook simulate`: send a realistic, correctly signed WhatsApp webhook
//! to a running server.
//!
//! A newcomer should be able to watch a lead appear without a Meta developer
//! account, a public URL or a phone. This command builds the same
//! `messages` webhook that WhatsApp Cloud API sends (including the 2026
//! username/BSUID shape, where the phone number is withheld), signs it with
//! the app secret exactly as Meta does, and POSTs it to
//! `/api/webhook/whatsapp`. Because it goes through the real HTTP path and the
//! real signature check, a success here means the server is wired up
//! correctly end to end.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

/// Sender used when neither `--from` nor `--bsuid` is given: a US
/// fictional-range number, so nobody real is ever "simulated".
pub const DEFAULT_FROM: &str = "15551234567";

/// Where the webhook lives on the server.
const WEBHOOK_PATH: &str = "/api/webhook/whatsapp";

/// The business side of the simulated payload. The values have the shape of
/// real ids; the server records the `phone_number_id` as the business number.
const WABA_ID: &str = "102290129340398";
const DISPLAY_PHONE_NUMBER: &str = "15550783881";
const PHONE_NUMBER_ID: &str = "106540352242922";

/// How long to wait for the server. A webhook receiver that takes longer is
/// broken, and WhatsApp itself gives up far sooner.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest part of the server's answer printed back, so an unexpected HTML
/// error page cannot flood the terminal.
const MAX_PRINTED_BODY: usize = 2_000;

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of the running server
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// App secret used to sign (defaults to WHATSAPP_APP_SECRET)
    #[arg(long, env = "WHATSAPP_APP_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Sender phone number (digits); omit for a username user
    #[arg(long)]
    pub from: Option<String>,
    /// Sender business-scoped user id, e.g. US.13491208655302741918
    #[arg(long)]
    pub bsuid: Option<String>,
    /// Sender's WhatsApp username (sent only with the contact profile)
    #[arg(long)]
    pub username: Option<String>,
    /// Sender's profile name
    #[arg(long, default_value = "Test Sender")]
    pub name: String,
    /// Message text
    #[arg(
        long,
        default_value = "Hello! I'd like to know more about your courses."
    )]
    pub text: String,
    /// Message id to send (reuse one to see a redelivery change nothing)
    #[arg(long)]
    pub id: Option<String>,
}

/// Who the simulated message comes from, after defaults and clean-up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sender {
    phone: Option<String>,
    bsuid: Option<String>,
}

impl Sender {
    /// `--from` with separators removed (people paste `+1 555-123-4567`),
    /// `--bsuid` trimmed; empty values count as absent. With neither,
    /// [`DEFAULT_FROM`], so a bare `leadhook simulate` works.
    fn from_args(args: &SimulateArgs) -> Self {
        let phone = args
            .from
            .as_deref()
            .map(|raw| {
                raw.chars()
                    .filter(|c| !is_phone_separator(*c))
                    .collect::<String>()
            })
            .filter(|phone| !phone.is_empty());
        let bsuid = non_empty(args.bsuid.as_deref());
        if phone.is_none() && bsuid.is_none() {
            return Self {
                phone: Some(DEFAULT_FROM.to_owned()),
                bsuid: None,
            };
        }
        Self { phone, bsuid }
    }

    fn describe(&self) -> String {
        match (&self.phone, &self.bsuid) {
            (Some(phone), Some(bsuid)) => format!("phone {phone}, BSUID {bsuid}"),
            (Some(phone), None) => format!("phone {phone}"),
            (None, Some(bsuid)) => format!("BSUID {bsuid} (phone number withheld)"),
            (None, None) => "nobody".to_owned(),
        }
    }
}

fn is_phone_separator(c: char) -> bool {
    matches!(c, '+' | ' ' | '-' | '.' | '(' | ')')
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Builds the webhook body WhatsApp Cloud API would send for one inbound
/// text message from the sender described by `args`.
///
/// As in real payloads, the phone number appears as `messages[].from` and
/// `contacts[].wa_id` only when the sender shares it, and the BSUID as
/// `messages[].from_user_id` and `contacts[].user_id`; a username user with
/// a withheld number has neither `from` nor `wa_id`.
pub fn build_payload(args: &SimulateArgs, wamid: &str, now: DateTime<Utc>) -> Value {
    let sender = Sender::from_args(args);

    let mut profile = Map::new();
    profile.insert("name".into(), json!(args.name));
    if let Some(username) = non_empty(args.username.as_deref()) {
        profile.insert("username".into(), json!(username));
    }
    let mut contact = Map::new();
    contact.insert("profile".into(), Value::Object(profile));
    if let Some(phone) = &sender.phone {
        contact.insert("wa_id".into(), json!(phone));
    }
    if let Some(bsuid) = &sender.bsuid {
        contact.insert("user_id".into(), json!(bsuid));
    }

    let mut message = Map::new();
    if let Some(phone) = &sender.phone {
        message.insert("from".into(), json!(phone));
    }
    if let Some(bsuid) = &sender.bsuid {
        message.insert("from_user_id".into(), json!(bsuid));
    }
    message.insert("id".into(), json!(wamid));
    // WhatsApp sends Unix seconds as a string.
    message.insert("timestamp".into(), json!(now.timestamp().to_string()));
    message.insert("type".into(), json!("text"));
    message.insert("text".into(), json!({ "body": args.text }));

    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": WABA_ID,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": DISPLAY_PHONE_NUMBER,
                        "phone_number_id": PHONE_NUMBER_ID,
                    },
                    "contacts": [Value::Object(contact)],
                    "messages": [Value::Object(message)],
                },
            }],
        }],
    })
}

/// A message id no real message has: `wamid.SIM` and hex digits from the
/// clock, the process id and a counter, so two runs (or two calls in one
/// run) never collide and the server treats each as a new message.
fn new_wamid(now: DateTime<Utc>) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = now
        .timestamp_nanos_opt()
        .unwrap_or_else(|| now.timestamp_micros().saturating_mul(1_000));
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "wamid.SIM{:016X}{:08X}{:04X}",
        nanos,
        std::process::id(),
        count & 0xFFFF
    )
}

/// Checks what clap cannot: values that would make a payload the server
/// rightly rejects, where the user surely meant something else.
fn validate(args: &SimulateArgs) -> anyhow::Result<()> {
    if args.secret.is_empty() {
        bail!("no app secret: set WHATSAPP_APP_SECRET or pass --secret (the same value the server uses)");
    }
    if let Some(raw) = &args.from {
        let digits: String = raw.chars().filter(|c| !is_phone_separator(*c)).collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            bail!("--from {raw:?} is not a phone number: give digits, e.g. --from 15551234567, or use --bsuid for a username user");
        }
    }
    if args.bsuid.as_deref().is_some_and(|b| b.trim().is_empty()) {
        bail!(
            "--bsuid is empty: give an id such as US.13491208655302741918, or leave the option out"
        );
    }
    if args.id.as_deref().is_some_and(|id| id.trim().is_empty()) {
        bail!("--id is empty: give a message id, or leave the option out to get a new one");
    }
    Ok(())
}

/// Sends one simulated message and reports the server's answer.
///
/// Succeeds only on `200`, the status that means the message is committed;
/// anything else is an error (non-zero exit), with a hint at the usual cause.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    validate(&args)?;
    let now = Utc::now();
    let wamid = match non_empty(args.id.as_deref()) {
        Some(id) => id,
        None => new_wamid(now),
    };
    let sender = Sender::from_args(&args);
    let base = args.url.trim_end_matches('/');
    let url = format!("{base}{WEBHOOK_PATH}");

    // Serialised once: the signature covers exactly these bytes, and exactly
    // these bytes are sent. Re-serialising could change them.
    let body = serde_json::to_vec(&build_payload(&args, &wamid, now))
        .context("could not serialise the simulated payload")?;
    let signature = crate::whatsapp::signature::sign(args.secret.as_bytes(), &body);

    println!("Sending message {wamid}");
    println!("  from {:?}, {}", args.name, sender.describe());
    println!("  to   {url}");

    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("could not create the HTTP client")?;
    let response = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await
        .with_context(|| {
            format!("could not reach {url}: is `leadhook serve` running there? (change the address with --url)")
        })?;

    let status = response.status();
    let text = response
        .text()
        .await
        .unwrap_or_else(|err| format!("<could not read the body: {err}>"));
    println!(
        "Server answered {status}: {}",
        shorten(text.trim(), MAX_PRINTED_BODY)
    );

    if status == reqwest::StatusCode::OK {
        println!();
        println!("The message is committed. See the lead and the live conversation:");
        println!("  curl -H \"Authorization: Bearer $ADMIN_TOKEN\" {base}/api/admin/leads");
        println!("  curl -H \"Authorization: Bearer $ADMIN_TOKEN\" {base}/api/admin/conversations");
        println!("Send it again with --id {wamid} to see that a redelivery changes nothing.");
        return Ok(());
    }

    let hint = match status.as_u16() {
        401 => "the signature was refused: --secret / WHATSAPP_APP_SECRET here must equal the server's WHATSAPP_APP_SECRET",
        503 => "the server is not ready: is WHATSAPP_APP_SECRET set where it runs, and is its database reachable? (see its log)",
        404 | 405 => "no webhook at this address: is --url the base address of a leadhook server?",
        413 => "the body is over the server's size limit: shorten --text",
        _ => "see the server's log for details",
    };
    bail!("server answered {status}, not 200: {hint}")
}

/// `text` cut to at most `max` characters, on a char boundary.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &text[..cut], text.len()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use clap::Parser;
    use std::io::{BufRead, BufReader, Read, Write};

    fn args() -> SimulateArgs {
        SimulateArgs {
            url: "http://127.0.0.1:8080".into(),
            secret: "s3cret".into(),
            from: None,
            bsuid: None,
            username: None,
            name: "Test Sender".into(),
            text: "Hello".into(),
            id: None,
        }
    }

    fn at() -> DateTime<Utc> {
        Utc.timestamp_opt(1_767_225_600, 0).unwrap()
    }

    fn value(payload: &Value) -> &Value {
        &payload["entry"][0]["changes"][0]["value"]
    }

    #[test]
    fn common_shape() {
        let payload = build_payload(&args(), "wamid.SIM1", at());
        assert_eq!(payload["object"], "whatsapp_business_account");
        assert_eq!(payload["entry"][0]["changes"][0]["field"], "messages");
        let value = value(&payload);
        assert_eq!(value["messaging_product"], "whatsapp");
        assert_eq!(value["metadata"]["phone_number_id"], PHONE_NUMBER_ID);
        assert_eq!(
            value["metadata"]["display_phone_number"],
            DISPLAY_PHONE_NUMBER
        );
        let message = &value["messages"][0];
        assert_eq!(message["id"], "wamid.SIM1");
        assert_eq!(message["timestamp"], "1767225600");
        assert_eq!(message["type"], "text");
        assert_eq!(message["text"]["body"], "Hello");
        assert_eq!(value["contacts"][0]["profile"]["name"], "Test Sender");
    }

    #[test]
    fn defaults_to_a_phone_sender() {
        let payload = build_payload(&args(), "wamid.SIM1", at());
        let value = value(&payload);
        assert_eq!(value["messages"][0]["from"], DEFAULT_FROM);
        assert_eq!(value["contacts"][0]["wa_id"], DEFAULT_FROM);
        assert!(value["messages"][0].get("from_user_id").is_none());
        assert!(value["contacts"][0].get("user_id").is_none());
    }

    #[test]
    fn phone_only() {
        let mut a = args();
        a.from = Some("+1 (650) 555-1234".into());
        let payload = build_payload(&a, "wamid.SIM1", at());
        let value = value(&payload);
        assert_eq!(value["messages"][0]["from"], "16505551234");
        assert_eq!(value["contacts"][0]["wa_id"], "16505551234");
        assert!(value["messages"][0].get("from_user_id").is_none());
        assert!(value["contacts"][0].get("user_id").is_none());
        assert!(value["contacts"][0]["profile"].get("username").is_none());
    }

    #[test]
    fn bsuid_only_username_user_has_no_phone() {
        let mut a = args();
        a.bsuid = Some("US.13491208655302741918".into());
        a.username = Some("ana.learns".into());
        a.name = "Ana".into();
        let payload = build_payload(&a, "wamid.SIM1", at());
        let value = value(&payload);
        let message = value["messages"][0].as_object().unwrap();
        let contact = value["contacts"][0].as_object().unwrap();
        assert_eq!(message["from_user_id"], "US.13491208655302741918");
        assert_eq!(contact["user_id"], "US.13491208655302741918");
        assert_eq!(contact["profile"]["username"], "ana.learns");
        assert_eq!(contact["profile"]["name"], "Ana");
        assert!(!message.contains_key("from"));
        assert!(!contact.contains_key("wa_id"));
    }

    #[test]
    fn phone_and_bsuid() {
        let mut a = args();
        a.from = Some("447700900123".into());
        a.bsuid = Some("GB.998877".into());
        let payload = build_payload(&a, "wamid.SIM1", at());
        let value = value(&payload);
        assert_eq!(value["messages"][0]["from"], "447700900123");
        assert_eq!(value["messages"][0]["from_user_id"], "GB.998877");
        assert_eq!(value["contacts"][0]["wa_id"], "447700900123");
        assert_eq!(value["contacts"][0]["user_id"], "GB.998877");
    }

    #[test]
    fn generated_ids_are_unique_and_marked() {
        let a = new_wamid(at());
        let b = new_wamid(at());
        assert!(a.starts_with("wamid.SIM"));
        assert_ne!(a, b);
    }

    #[test]
    fn validation_rejects_what_the_user_cannot_have_meant() {
        let mut a = args();
        a.secret.clear();
        assert!(validate(&a).is_err());

        let mut a = args();
        a.from = Some("ana".into());
        assert!(validate(&a).is_err());

        let mut a = args();
        a.bsuid = Some(" ".into());
        assert!(validate(&a).is_err());

        let mut a = args();
        a.from = Some("+1 555 123 4567".into());
        a.bsuid = Some("US.1".into());
        assert!(validate(&a).is_ok());
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn command_line_defaults() {
        let cli = Cli::try_parse_from(["simulate", "--secret", "x"]).unwrap();
        assert_eq!(cli.args.url, "http://127.0.0.1:8080");
        assert_eq!(cli.args.name, "Test Sender");
        assert!(cli.args.from.is_none() && cli.args.bsuid.is_none());
    }

    /// What the test server received.
    struct Captured {
        request_line: String,
        /// Lower-cased names.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Captured {
        fn header(&self, name: &str) -> &str {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {name} header"))
        }
    }

    /// A one-shot HTTP server on a loopback port: answers `status` and hands
    /// back the request it received.
    fn one_shot_server(status: &'static str) -> (String, std::thread::JoinHandle<Captured>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            )
            .unwrap();
            Captured {
                request_line,
                headers,
                body,
            }
        });
        (base, handle)
    }

    #[tokio::test]
    async fn run_posts_signed_bytes_to_the_webhook() {
        let (base, server) = one_shot_server("200 OK");
        let mut a = args();
        a.url = format!("{base}/");
        a.id = Some("wamid.SIMTEST".into());
        a.bsuid = Some("US.42".into());
        run(a).await.unwrap();

        let request = server.join().unwrap();
        assert!(
            request
                .request_line
                .starts_with("POST /api/webhook/whatsapp "),
            "{}",
            request.request_line
        );
        assert_eq!(request.header("content-type"), "application/json");
        // The signature covers exactly the bytes that went over the wire.
        assert_eq!(
            request.header("x-hub-signature-256"),
            crate::whatsapp::signature::sign(b"s3cret", &request.body)
        );
        let payload: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(value(&payload)["messages"][0]["id"], "wamid.SIMTEST");
        assert_eq!(value(&payload)["messages"][0]["from_user_id"], "US.42");
    }

    #[tokio::test]
    async fn run_fails_unless_the_server_answers_200() {
        let (base, server) = one_shot_server("401 Unauthorized");
        let mut a = args();
        a.url = base;
        let err = run(a).await.unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
        server.join().unwrap();
    }
}
