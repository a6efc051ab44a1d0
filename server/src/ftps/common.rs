//! Commands answered the same in every state where they exist: FEAT, HELP
//! and NOOP even in the clear; once TLS is up, before and after login, also
//! the TLS parameters (PBSZ, PROT, CCC, AUTH again), OPTS and SYST; and the
//! reply to QUIT, which each state follows with its own ending.

use super::line::Command;
use super::reply::Reply;

/// PBSZ/PROT state (RFC 4217 §8, §9): PROT P is the only level accepted.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Protection {
    /// PBSZ 0 was received.
    pbsz: bool,
    /// PROT P was accepted.
    private: bool,
}

impl Protection {
    /// Whether PROT P was accepted: data connections may be opened.
    pub(super) fn is_private(self) -> bool {
        self.private
    }
}

/// The commands of any state once TLS is up; `None` for others.
pub(crate) fn answer(cmd: &Command, protection: &mut Protection) -> Option<Reply> {
    Some(match cmd.verb.as_str() {
        "AUTH" => Reply::new(503, "TLS is already active"),
        "PBSZ" => {
            protection.pbsz = true;
            Reply::new(200, "PBSZ=0")
        }
        "PROT" => match cmd.arg_text().to_ascii_uppercase().as_str() {
            _ if !protection.pbsz => Reply::new(503, "send PBSZ first"),
            "P" => {
                protection.private = true;
                Reply::new(200, "data connections are protected (PROT P)")
            }
            "C" | "S" | "E" => Reply::new(536, "only PROT P is accepted: data is never sent in the clear"),
            _ => Reply::new(504, "unknown protection level"),
        },
        "CCC" => Reply::new(534, "CCC refused: the control connection stays encrypted"),
        "OPTS" => match cmd.arg_text().to_ascii_uppercase().as_str() {
            "UTF8 ON" | "UTF8" => Reply::new(200, "UTF-8 is always on"),
            _ => Reply::new(501, "unknown option"),
        },
        "SYST" => Reply::new(215, "UNIX Type: L8"),
        _ => return informational(cmd),
    })
}

/// The commands that exist even in the clear (FEAT, HELP, NOOP): they tell
/// nothing about any user; `None` for others.
pub(super) fn informational(cmd: &Command) -> Option<Reply> {
    Some(match cmd.verb.as_str() {
        "FEAT" => features(),
        "NOOP" => Reply::new(200, "NOOP ok"),
        "HELP" => help(),
        _ => return None,
    })
}

/// The reply to QUIT, in every state; the connection then ends.
pub(super) fn goodbye() -> Reply {
    Reply::new(221, "goodbye")
}

/// FEAT (RFC 2389).
fn features() -> Reply {
    let features = [
        "AUTH TLS",
        "PBSZ",
        "PROT",
        "UTF8",
        "EPSV",
        "PASV",
        "SIZE",
        "MDTM",
        "REST STREAM",
        "TVFS",
        "MLST type*;size*;modify*;perm*;",
    ];
    Reply::multi(211, "Features:", features.iter().map(ToString::to_string), "End")
}

/// HELP.
fn help() -> Reply {
    let commands = [
        "USER PASS AUTH PBSZ PROT FEAT OPTS SYST NOOP QUIT HELP STAT",
        "PWD CWD CDUP TYPE MODE STRU PASV EPSV ABOR",
        "LIST NLST MLSD MLST SIZE MDTM RETR REST STOR DELE RNFR RNTO MKD RMD",
        "Refused: PORT EPRT (active mode), CCC, PROT C, APPE and REST before STOR (uploads are atomic)",
    ];
    Reply::multi(214, "Commands:", commands.iter().map(ToString::to_string), "End")
}
