//! What Parlo mails and how it reads: each [`Mail`] becomes a subject and a [`MailView`] in
//! the recipient's language (English or German), rendered by the `parlo-site` mail templates
//! into a multipart/alternative message (text and HTML). Header values are never taken from
//! users unchecked: subjects are fixed sentences, an operator's subject with a line break is
//! refused, names users chose only appear in the body.

use lettre::Message;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use parlo_site::Template;
use parlo_site::mail::{MailAction, MailHtml, MailText, MailView};

use crate::model::{Invalid, Lang};

/// A security-relevant change to an account, told to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    PasswordChanged,
    PasswordReset,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed { left: usize },
}

/// Every mail Parlo sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    /// Confirms the address of a new account.
    Verify {
        link: String,
    },
    /// Someone tried to sign up with an address that has an account.
    SignupAttempt {
        login: String,
        reset: String,
    },
    /// A link to choose a new password.
    Reset {
        link: String,
    },
    /// An invitation to a workspace, bound to the address it is sent to.
    Invitation {
        workspace: String,
        role: String,
        link: String,
    },
    /// Confirms a new address (sent to the new address).
    EmailChangeConfirm {
        link: String,
        new_email: String,
    },
    /// The address was changed (sent to the old address).
    EmailChanged {
        new_email: String,
    },
    Security(SecurityEvent),
    /// The account was closed; what went with it.
    AccountClosed {
        workspaces: Vec<String>,
        memberships: u64,
        sessions: u64,
    },
    /// An operator's notice (`parlo admin notify`), in the operator's words.
    Notice {
        subject: String,
        body: String,
    },
}

impl Mail {
    /// An operator's notice; refuses a subject that could inject a header.
    pub fn notice(subject: &str, body: &str) -> Result<Mail, Invalid> {
        let subject = subject.trim();
        if subject.is_empty() || subject.chars().count() > 200 {
            return Err(Invalid("The subject needs 1 to 200 characters.".into()));
        }
        if subject.chars().any(char::is_control) {
            return Err(Invalid(
                "The subject must be one line (no line breaks or control characters).".into(),
            ));
        }
        if body.trim().is_empty() {
            return Err(Invalid("The body is empty.".into()));
        }
        Ok(Mail::Notice {
            subject: subject.to_owned(),
            body: body.to_owned(),
        })
    }

    /// What kind of mail this is, for the queue status (never its content).
    pub fn kind(&self) -> &'static str {
        match self {
            Mail::Verify { .. } => "verify",
            Mail::SignupAttempt { .. } => "signup_attempt",
            Mail::Reset { .. } => "password_reset",
            Mail::Invitation { .. } => "invitation",
            Mail::EmailChangeConfirm { .. } => "email_change_confirm",
            Mail::EmailChanged { .. } => "email_changed",
            Mail::Security(SecurityEvent::PasswordChanged) => "security.password_changed",
            Mail::Security(SecurityEvent::PasswordReset) => "security.password_reset",
            Mail::Security(SecurityEvent::MfaEnabled) => "security.mfa_enabled",
            Mail::Security(SecurityEvent::MfaDisabled) => "security.mfa_disabled",
            Mail::Security(SecurityEvent::RecoveryCodeUsed { .. }) => "security.recovery_code_used",
            Mail::AccountClosed { .. } => "account_closed",
            Mail::Notice { .. } => "notice",
        }
    }

    /// The subject and content in `lang`.
    pub fn view(&self, lang: Lang) -> (String, MailView) {
        let de = lang == Lang::De;
        let t = |en: &str, de_text: &str| {
            if de {
                de_text.to_owned()
            } else {
                en.to_owned()
            }
        };
        let action = |en: &str, de_text: &str, url: &str| {
            Some(MailAction {
                label: t(en, de_text),
                url: url.to_owned(),
            })
        };
        let not_you = t(
            "If this was not you, change your password now and contact your administrator.",
            "Falls Sie das nicht waren, ändern Sie jetzt Ihr Passwort und wenden Sie sich an Ihre Administration.",
        );
        let ignore = t(
            "If you did not ask for this, ignore this mail; nothing changes.",
            "Falls Sie das nicht angefordert haben, ignorieren Sie diese E-Mail; es ändert sich nichts.",
        );
        let mut v = MailView {
            lang: lang.as_str(),
            footer: t(
                "Parlo sent this mail because of your account. Parlo never asks for your password by mail.",
                "Parlo hat Ihnen diese E-Mail wegen Ihres Kontos gesendet. Parlo fragt nie per E-Mail nach Ihrem Passwort.",
            ),
            ..MailView::default()
        };
        let subject = match self {
            Mail::Verify { link } => {
                v.heading = t(
                    "Confirm your e-mail address",
                    "Bestätigen Sie Ihre E-Mail-Adresse",
                );
                v.paragraphs = vec![t(
                    "Welcome to Parlo. Open the link below to confirm that this address is yours. The link is valid for 24 hours.",
                    "Willkommen bei Parlo. Öffnen Sie den Link unten, um zu bestätigen, dass diese Adresse Ihnen gehört. Der Link ist 24 Stunden gültig.",
                )];
                v.action = action("Confirm the address", "Adresse bestätigen", link);
                v.after = vec![ignore];
                v.heading.clone()
            }
            Mail::SignupAttempt { login, reset } => {
                v.heading = t(
                    "Someone tried to sign up with your address",
                    "Jemand wollte sich mit Ihrer Adresse registrieren",
                );
                v.paragraphs = vec![
                    t(
                        "Someone tried to create a Parlo account with this e-mail address, which already has an account. No second account was created.",
                        "Jemand wollte mit dieser E-Mail-Adresse ein Parlo-Konto anlegen; für sie gibt es schon ein Konto. Es wurde kein zweites Konto angelegt.",
                    ),
                    t(
                        &format!("If it was you, log in at {login}."),
                        &format!("Falls Sie das waren, melden Sie sich unter {login} an."),
                    ),
                ];
                v.action = action(
                    "Forgot your password? Choose a new one",
                    "Passwort vergessen? Neues Passwort wählen",
                    reset,
                );
                v.after = vec![ignore];
                v.heading.clone()
            }
            Mail::Reset { link } => {
                v.heading = t("Choose a new password", "Neues Passwort wählen");
                v.paragraphs = vec![t(
                    "Someone asked to reset the password of your Parlo account. Open the link below to choose a new one. It is valid for 30 minutes and works once. If you use two-factor authentication, it is still asked for when you log in.",
                    "Jemand hat das Zurücksetzen des Passworts Ihres Parlo-Kontos angefordert. Öffnen Sie den Link unten, um ein neues zu wählen. Er ist 30 Minuten gültig und funktioniert einmal. Wenn Sie die Zwei-Faktor-Authentifizierung nutzen, wird sie bei der Anmeldung weiterhin abgefragt.",
                )];
                v.action = action("Choose a new password", "Neues Passwort wählen", link);
                v.after = vec![ignore];
                v.heading.clone()
            }
            Mail::Invitation {
                workspace,
                role,
                link,
            } => {
                let (workspace, role) = (one_line(workspace), one_line(role));
                v.heading = t(
                    "You are invited to a workspace on Parlo",
                    "Sie sind zu einem Arbeitsbereich auf Parlo eingeladen",
                );
                v.paragraphs = vec![
                    t(
                        &format!(
                            "You are invited to join the workspace \"{workspace}\" as {role}."
                        ),
                        &format!(
                            "Sie sind eingeladen, dem Arbeitsbereich \"{workspace}\" als {role} beizutreten."
                        ),
                    ),
                    t(
                        "The invitation is for this e-mail address: accept it with a confirmed Parlo account of this address (sign up with it if you have none).",
                        "Die Einladung gilt für diese E-Mail-Adresse: Nehmen Sie sie mit einem bestätigten Parlo-Konto dieser Adresse an (registrieren Sie sich damit, falls Sie keines haben).",
                    ),
                ];
                v.action = action("Open the invitation", "Einladung öffnen", link);
                v.after = vec![t(
                    "If you do not expect this invitation, ignore this mail.",
                    "Falls Sie diese Einladung nicht erwarten, ignorieren Sie diese E-Mail.",
                )];
                v.heading.clone()
            }
            Mail::EmailChangeConfirm { link, new_email } => {
                v.heading = t(
                    "Confirm your new e-mail address",
                    "Bestätigen Sie Ihre neue E-Mail-Adresse",
                );
                v.paragraphs = vec![t(
                    &format!(
                        "Open the link below to make {new_email} the address of your Parlo account. It is valid for one hour."
                    ),
                    &format!(
                        "Öffnen Sie den Link unten, um {new_email} zur Adresse Ihres Parlo-Kontos zu machen. Er ist eine Stunde gültig."
                    ),
                )];
                v.action = action("Confirm the new address", "Neue Adresse bestätigen", link);
                v.after = vec![ignore];
                v.heading.clone()
            }
            Mail::EmailChanged { new_email } => {
                v.heading = t(
                    "Your e-mail address was changed",
                    "Ihre E-Mail-Adresse wurde geändert",
                );
                v.paragraphs = vec![t(
                    &format!(
                        "The address of your Parlo account is now {new_email}. Mail about your account goes there from now on."
                    ),
                    &format!(
                        "Die Adresse Ihres Parlo-Kontos ist jetzt {new_email}. E-Mails zu Ihrem Konto gehen ab jetzt dorthin."
                    ),
                )];
                v.after = vec![not_you];
                v.heading.clone()
            }
            Mail::Security(e) => {
                let (en, de_text) = match e {
                    SecurityEvent::PasswordChanged => (
                        "Your password was changed".to_owned(),
                        "Ihr Passwort wurde geändert".to_owned(),
                    ),
                    SecurityEvent::PasswordReset => (
                        "Your password was reset".to_owned(),
                        "Ihr Passwort wurde zurückgesetzt".to_owned(),
                    ),
                    SecurityEvent::MfaEnabled => (
                        "Two-factor authentication is on".to_owned(),
                        "Die Zwei-Faktor-Authentifizierung ist aktiv".to_owned(),
                    ),
                    SecurityEvent::MfaDisabled => (
                        "Two-factor authentication was turned off".to_owned(),
                        "Die Zwei-Faktor-Authentifizierung wurde ausgeschaltet".to_owned(),
                    ),
                    SecurityEvent::RecoveryCodeUsed { left } => (
                        format!("A recovery code was used ({left} left)"),
                        format!("Ein Wiederherstellungscode wurde verwendet ({left} übrig)"),
                    ),
                };
                v.heading = t(&en, &de_text);
                v.paragraphs = vec![t(
                    &format!("{en} on your Parlo account."),
                    &format!("{de_text} (Ihr Parlo-Konto)."),
                )];
                if matches!(
                    e,
                    SecurityEvent::PasswordChanged | SecurityEvent::PasswordReset
                ) {
                    v.paragraphs.push(t(
                        "Every other session of your account was logged out.",
                        "Alle anderen Sitzungen Ihres Kontos wurden abgemeldet.",
                    ));
                }
                v.after = vec![not_you];
                v.heading.clone()
            }
            Mail::AccountClosed {
                workspaces,
                memberships,
                sessions,
            } => {
                let workspaces: Vec<String> = workspaces.iter().map(|w| one_line(w)).collect();
                v.heading = t(
                    "Your Parlo account was closed",
                    "Ihr Parlo-Konto wurde geschlossen",
                );
                let list = if workspaces.is_empty() {
                    t("none", "keine")
                } else {
                    workspaces.join(", ")
                };
                v.paragraphs = vec![
                    t(
                        "Your account and everything that belonged only to it were deleted:",
                        "Ihr Konto und alles, was nur zu ihm gehörte, wurden gelöscht:",
                    ),
                    t(
                        &format!("Workspaces deleted with their bots, keys and chat logs: {list}."),
                        &format!(
                            "Gelöschte Arbeitsbereiche mit ihren Bots, Schlüsseln und Chat-Protokollen: {list}."
                        ),
                    ),
                    t(
                        &format!(
                            "Memberships in other workspaces removed: {memberships}. Sessions ended: {sessions}."
                        ),
                        &format!(
                            "Entfernte Mitgliedschaften in anderen Arbeitsbereichen: {memberships}. Beendete Sitzungen: {sessions}."
                        ),
                    ),
                ];
                v.after = vec![t(
                    "Backups are deleted as they expire. If you did not close your account, contact the operator of this Parlo server.",
                    "Sicherungen werden mit ihrem Ablauf gelöscht. Falls Sie Ihr Konto nicht geschlossen haben, wenden Sie sich an den Betreiber dieses Parlo-Servers.",
                )];
                v.heading.clone()
            }
            Mail::Notice { subject, body } => {
                v.heading = subject.clone();
                v.paragraphs = body
                    .split("\n\n")
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect();
                v.footer = t(
                    "The operator of this Parlo server sent this notice to the owners and administrators of your workspace.",
                    "Der Betreiber dieses Parlo-Servers hat diese Mitteilung an die Inhaber und Administratoren Ihres Arbeitsbereichs gesendet.",
                );
                subject.clone()
            }
        };
        (one_line(&subject), v)
    }
}

/// A header value on one line: control characters become spaces (the second fence behind
/// refusing them where users give text, and lettre's own encoding).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The complete RFC 5322 message (multipart/alternative: text, then HTML).
pub fn compose(from: &Mailbox, to: &Mailbox, lang: Lang, mail: &Mail) -> anyhow::Result<Vec<u8>> {
    let (subject, view) = mail.view(lang);
    let text = MailText { m: &view }.render()?;
    let html = MailHtml { m: &view }.render()?;
    let message = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(subject)
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii("Content-Language".to_owned())?,
            lang.as_str().to_owned(),
        ))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    lettre::message::SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    lettre::message::SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )?;
    Ok(message.formatted())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn raw(mail: &Mail, lang: Lang) -> String {
        let from = Mailbox::from_str("Parlo <noreply@example.com>").unwrap();
        let to = Mailbox::from_str("ann@example.com").unwrap();
        String::from_utf8(compose(&from, &to, lang, mail).unwrap()).unwrap()
    }

    #[test]
    fn a_message_has_text_and_html_in_the_users_language() {
        let m = Mail::Reset {
            link: "https://chat.example.com/password/reset/tok".into(),
        };
        let en = raw(&m, Lang::En);
        assert!(en.contains("multipart/alternative"), "{en}");
        assert!(
            en.contains("text/plain") && en.contains("text/html"),
            "{en}"
        );
        assert!(en.contains("Subject: Choose a new password"), "{en}");
        let de = raw(&m, Lang::De);
        assert!(
            de.contains("Subject: =?utf-8?") || de.contains("Neues Passwort"),
            "{de}"
        );
        assert!(de.contains("Content-Language: de"), "{de}");
    }

    #[test]
    fn a_subject_with_a_line_break_is_refused_and_names_stay_in_the_body() {
        assert!(Mail::notice("Hello\r\nBcc: evil@example.com", "x").is_err());
        assert!(Mail::notice("Hello\nBcc: evil@example.com", "x").is_err());
        let m = Mail::Invitation {
            workspace: "Evil\r\nBcc: evil@example.com".into(),
            role: "member".into(),
            link: "https://chat.example.com/invite/x".into(),
        };
        let r = raw(&m, Lang::En);
        let headers = r.split("\r\n\r\n").next().unwrap();
        assert!(!headers.contains("evil@example.com"), "{headers}");
        assert!(!r.contains("\r\nBcc:"), "{r}");
    }

    #[test]
    fn html_part_escapes_what_users_named() {
        let m = Mail::Invitation {
            workspace: "<script>alert(1)</script>".into(),
            role: "member".into(),
            link: "https://chat.example.com/invite/x".into(),
        };
        let (_, view) = m.view(Lang::En);
        let html = MailHtml { m: &view }.render().unwrap();
        assert!(!html.contains("<script>"), "{html}");
    }
}
