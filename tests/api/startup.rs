//! The shipped binary refuses to start on bad configuration, naming the variable and never
//! printing a secret.

use std::process::Command;

fn run_hookrelay(vars: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("run the hookrelay binary");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn startup_fails_naming_the_missing_queue_variable() {
    let (ok, output) = run_hookrelay(&[]);
    assert!(!ok);
    assert!(output.contains("HOOKRELAY_QUEUE_URL"), "{output}");
}

#[test]
fn startup_fails_naming_the_secret_variables_when_none_is_set() {
    let (ok, output) = run_hookrelay(&[("HOOKRELAY_QUEUE_URL", "http://127.0.0.1:9/q.fifo")]);
    assert!(!ok);
    assert!(
        output.contains(
            "HOOKRELAY_ENGINE_SECRETS, HOOKRELAY_REKKO_SECRETS, HOOKRELAY_STANDARD_SECRETS"
        ),
        "{output}"
    );
}

#[test]
fn a_bad_secret_is_named_by_variable_but_never_printed() {
    let secret = "whsec_!!this-secret-must-not-be-printed!!";
    let (ok, output) = run_hookrelay(&[
        ("HOOKRELAY_QUEUE_URL", "http://127.0.0.1:9/q.fifo"),
        ("HOOKRELAY_STANDARD_SECRETS", secret),
    ]);
    assert!(!ok);
    assert!(output.contains("HOOKRELAY_STANDARD_SECRETS"), "{output}");
    assert!(!output.contains("this-secret-must-not"), "{output}");
}
