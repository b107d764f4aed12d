//! TODO placeholder
use crate::config::Lang;
use crate::event::ActionEvent;
pub struct Rendered { pub title: String, pub text: String, pub url: String }
pub fn render(ev: &ActionEvent, _d: &str, _b: &str, _l: Lang) -> Rendered { Rendered { title: ev.action.clone(), text: ev.action.clone(), url: String::new() } }
