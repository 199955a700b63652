//! The push control's card on another site: drawn with web-sys into a shadow root of the
//! site's element, from the same [`CardState`], words and `data-testid`s as the Leptos
//! view on Clarion's page.
//!
//! It builds its elements once and, on every change of the card, sets what changed:
//! attributes, texts, and the topic list when the site's topics change. Focus and the
//! state of the page around it survive each update.

use clarion::components::push_control::controller::WatchId;
use clarion::components::push_control::{words, CardState, Control, PushState, INSTALL_STEPS};
use clarion::domain::Topic;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use web_sys::{Document, Element, Event, HtmlInputElement, Node, ShadowRootInit, ShadowRootMode};

/// The card's styles (the same file Clarion's page uses), inside its shadow root: none of
/// them reach the site, and the site's own stop at the host element.
const STYLE: &str = include_str!("../../style/push-control.css");

/// A card mounted in a host element; it follows the control until dropped.
pub struct Card {
    control: Control,
    watch: WatchId,
    _listeners: Vec<Closure<dyn FnMut(Event)>>,
}

impl Drop for Card {
    fn drop(&mut self) {
        self.control.unwatch(self.watch);
    }
}

/// The elements an update touches.
struct Parts {
    document: Document,
    section: Element,
    badge: Element,
    state_text: Element,
    notice: Element,
    blocked_help: Element,
    install_help: Element,
    unsupported_help: Element,
    toggle: Element,
    send_test: Element,
    topic_choices: Element,
    topic_list: Element,
    subscription: Element,
    subscription_json: Element,
    /// The topics the list shows now.
    shown_topics: RefCell<Vec<Topic>>,
}

/// Draws the card into `host`'s shadow root (replacing whatever it held).
pub fn mount(control: &Control, host: &Element) -> Result<Card, JsValue> {
    let document = host.owner_document().ok_or_else(|| JsValue::from_str("mount: the element is not in a document"))?;
    let root = match host.shadow_root() {
        Some(root) => {
            root.set_inner_html("");
            root
        }
        None => host.attach_shadow(&ShadowRootInit::new(ShadowRootMode::Open))?,
    };
    let add = |parent: &Node, tag: &str, attributes: &[(&str, &str)], text: &str| -> Result<Element, JsValue> {
        let element = document.create_element(tag)?;
        for (name, value) in attributes {
            element.set_attribute(name, value)?;
        }
        if !text.is_empty() {
            element.set_text_content(Some(text));
        }
        parent.append_child(&element)?;
        Ok(element)
    };
    add(&root, "style", &[], STYLE)?;
    let section =
        add(&root, "section", &[("class", "push-card"), ("aria-labelledby", "push-heading"), ("data-testid", "push-control")], "")?;
    add(&section, "h2", &[("id", "push-heading")], words::HEADING)?;
    let status = add(
        &section,
        "div",
        &[("class", "status"), ("role", "status"), ("aria-live", "polite"), ("aria-atomic", "true"), ("data-testid", "push-status")],
        "",
    )?;
    let badge = add(&status, "span", &[("class", "state-badge")], "")?;
    let state_text = add(&status, "span", &[("class", "state-text")], "")?;
    let notice = add(&status, "p", &[("class", "notice"), ("data-testid", "push-notice")], "")?;
    let blocked_help =
        add(&section, "p", &[("class", "help"), ("data-testid", "blocked-help")], PushState::Blocked.help().unwrap_or_default())?;
    let install_help = add(&section, "ol", &[("class", "help install-steps"), ("data-testid", "install-help")], "")?;
    for step in INSTALL_STEPS {
        add(&install_help, "li", &[], step)?;
    }
    let unsupported_help =
        add(&section, "p", &[("class", "help"), ("data-testid", "unsupported-help")], PushState::Unsupported.help().unwrap_or_default())?;
    let actions = add(&section, "div", &[("class", "actions")], "")?;
    let toggle = add(&actions, "button", &[("type", "button"), ("class", "primary"), ("data-testid", "push-toggle")], "")?;
    let send_test = add(&actions, "button", &[("type", "button"), ("data-testid", "send-test")], words::SEND_TEST)?;
    let topic_choices = add(&section, "fieldset", &[("class", "topics"), ("data-testid", "topic-choices")], "")?;
    add(&topic_choices, "legend", &[], words::TOPICS)?;
    let topic_list = add(&topic_choices, "div", &[], "")?;
    let subscription = add(&section, "details", &[("class", "subscription"), ("open", "")], "")?;
    add(&subscription, "summary", &[], words::SUBSCRIPTION)?;
    let subscription_json = add(&subscription, "pre", &[("data-testid", "subscription-json")], "")?;

    let mut listeners = Vec::new();
    let mut listen = |target: &Element, event: &str, handler: Box<dyn FnMut(Event)>| -> Result<(), JsValue> {
        let closure = Closure::wrap(handler);
        target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
        listeners.push(closure);
        Ok(())
    };
    let on_toggle = control.clone();
    listen(&toggle, "click", Box::new(move |_| on_toggle.toggle()))?;
    let on_send_test = control.clone();
    listen(&send_test, "click", Box::new(move |_| on_send_test.run(on_send_test.send_test())))?;
    // One listener for every checkbox, however often the list is redrawn.
    let on_topic = control.clone();
    listen(
        &topic_choices,
        "change",
        Box::new(move |event| {
            if let Some(input) = event.target().and_then(|t| t.dyn_into::<HtmlInputElement>().ok()) {
                on_topic.run(on_topic.choose_topic(input.value(), input.checked()));
            }
        }),
    )?;

    let parts = Rc::new(Parts {
        document: document.clone(),
        section,
        badge,
        state_text,
        notice,
        blocked_help,
        install_help,
        unsupported_help,
        toggle,
        send_test,
        topic_choices,
        topic_list,
        subscription,
        subscription_json,
        shown_topics: RefCell::new(Vec::new()),
    });
    parts.render(&control.card());
    let watching = parts.clone();
    let watch = control.watch(move |card| watching.render(card));
    Ok(Card { control: control.clone(), watch, _listeners: listeners })
}

impl Parts {
    fn render(&self, card: &CardState) {
        let state = card.state;
        let _ = self.section.set_attribute("data-state", state.key());
        let _ = self.badge.set_attribute("data-state", state.key());
        self.badge.set_text_content(Some(state.label()));
        self.state_text.set_text_content(Some(state.description()));
        self.notice.set_text_content(Some(&card.notice));
        hide(&self.notice, card.notice.is_empty());
        hide(&self.blocked_help, state != PushState::Blocked);
        hide(&self.install_help, state != PushState::InstallFirst);
        hide(&self.unsupported_help, state != PushState::Unsupported);
        self.toggle.set_text_content(Some(state.toggle_label()));
        let _ = self.toggle.set_attribute("aria-busy", if card.busy { "true" } else { "false" });
        let _ = self.toggle.toggle_attribute_with_force("disabled", !card.toggle_enabled());
        let _ = self.send_test.toggle_attribute_with_force("disabled", !card.send_test_enabled());
        hide(&self.topic_choices, !card.offers_topics());
        if *self.shown_topics.borrow() != card.topics {
            let _ = self.draw_topics(&card.topics);
            *self.shown_topics.borrow_mut() = card.topics.clone();
        }
        let inputs = self.topic_list.get_elements_by_tag_name("input");
        for i in 0..inputs.length() {
            if let Some(input) = inputs.item(i).and_then(|e| e.dyn_into::<HtmlInputElement>().ok()) {
                // While a choice is being saved the box shows the click; once Clarion
                // answers, it shows what Clarion stored (the click undone if it failed).
                if !card.busy {
                    input.set_checked(card.chosen.contains(&input.value()));
                }
                input.set_disabled(card.busy);
            }
        }
        hide(&self.subscription, card.subscription.is_none());
        self.subscription_json.set_text_content(Some(&card.subscription_text));
    }

    fn draw_topics(&self, topics: &[Topic]) -> Result<(), JsValue> {
        self.topic_list.set_inner_html("");
        for topic in topics {
            let id = format!("topic-{}", topic.name);
            let label = self.document.create_element("label")?;
            label.set_attribute("class", "check")?;
            label.set_attribute("for", &id)?;
            let input = self.document.create_element("input")?;
            for (name, value) in [("id", id.as_str()), ("type", "checkbox"), ("data-testid", "topic-choice"), ("value", &topic.name)] {
                input.set_attribute(name, value)?;
            }
            label.append_child(&input)?;
            let name = self.document.create_element("span")?;
            name.set_text_content(Some(&topic.label));
            label.append_child(&name)?;
            if !topic.description.is_empty() {
                let description = self.document.create_element("small")?;
                description.set_attribute("class", "help")?;
                description.set_text_content(Some(&topic.description));
                label.append_child(&description)?;
            }
            self.topic_list.append_child(&label)?;
        }
        Ok(())
    }
}

fn hide(element: &Element, hidden: bool) {
    let _ = element.toggle_attribute_with_force("hidden", hidden);
}
