//! An incident on one IdP disables it in the registry, through the bus, until support
//! resolves it; the chooser follows at once.

use relais_proto::support::v1 as support;
use reqwest::StatusCode;

use crate::harness::*;

async fn chooser_offers(stack: &Stack, idp: &str) -> bool {
    let browser = Browser::new();
    let req = AuthRequest::new(SP_A, REDIRECT_A, "openid email");
    let (status, page) = browser.get(&req.url(&stack.hub)).await.page();
    assert_eq!(status, StatusCode::OK, "{page}");
    page.contains(&format!(r#"value="{idp}""#))
}

async fn until_offered(stack: &Stack, idp: &str, offered: bool) {
    for _ in 0..100 {
        if chooser_offers(stack, idp).await == offered {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the chooser never {} {idp}",
        if offered { "offered" } else { "hid" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_incident_disables_the_idp_until_resolved() {
    let stack = Stack::start().await;
    assert!(chooser_offers(&stack, "demo-idp").await);
    let contact = support::Caller {
        who: Some(support::caller::Who::Contact(support::Contact {
            partner_kind: support::PartnerKind::Idp as i32,
            partner_id: "demo-idp".into(),
            email: "ops@demo-idp.example".into(),
        })),
    };
    let ticket = stack
        .support
        .clone()
        .open_ticket(support::OpenTicketRequest {
            caller: Some(contact),
            partner_kind: support::PartnerKind::Idp as i32,
            partner_id: "demo-idp".into(),
            scope: "one_partner".into(),
            severity: 0,
            subject: "Our token endpoint fails".into(),
            body: "HTTP 500 since 10:02".into(),
            attachments: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ticket.disabled_idp, "demo-idp");
    until_offered(&stack, "demo-idp", false).await;
    // The other IdP is untouched.
    assert!(chooser_offers(&stack, "weak-idp").await);

    let staff = support::Caller {
        who: Some(support::caller::Who::Staff(support::Staff {
            role: "level3".into(),
            name: "agent".into(),
        })),
    };
    stack
        .support
        .clone()
        .resolve(support::TextRequest {
            caller: Some(staff),
            ticket_id: ticket.id.clone(),
            text: "Fixed on their side".into(),
        })
        .await
        .unwrap();
    until_offered(&stack, "demo-idp", true).await;
    stack.stop().await;
}
