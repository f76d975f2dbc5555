//! Graceful shutdown: SIGTERM stops accepting, says BYE to IMAP sessions,
//! and the process exits 0 within the grace period.

use crate::harness::*;

#[tokio::test]
async fn sigterm_sends_bye_and_exits_zero() {
    let mut server = TestServer::start();
    let mut imap = Client::connect(server.imaps, &server.ca).await;
    imap.line().await;
    imap.send(format!("a1 LOGIN {USER} \"{PASSWORD}\"\r\n").as_bytes())
        .await;
    imap.until_tagged("a1").await;
    let mut pop = Client::connect(server.pop3s, &server.ca).await;
    pop.line().await;

    let status = tokio::task::spawn_blocking(move || {
        let st = server.terminate();
        (st, server)
    })
    .await
    .unwrap();
    let (status, server) = status;
    assert!(
        status.success(),
        "exit status {status:?}; log: {}",
        server.log()
    );

    let bye = imap.line().await;
    assert!(bye.starts_with("* BYE"), "{bye}");
    assert!(imap.rest().await.is_empty());
    let pop_bye = pop.line().await;
    assert!(
        pop_bye.starts_with("-ERR") || pop_bye.is_empty(),
        "{pop_bye}"
    );
}
