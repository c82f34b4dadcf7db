//! The models the command line can name (`oxmm difftest --model NAME`).

use crate::model::Model;

/// The model used without `--model`.
pub const DEFAULT: &str = "oxmm";

/// The names `--model` accepts.
pub const NAMES: &[&str] = &["oxmm", "host"];

thread_local! {
    /// The simulated machine every oxmm model of this thread runs on,
    /// booted on first use (booting once keeps thousands of scripts fast).
    static SHARED: std::cell::RefCell<Option<std::rc::Rc<crate::model_oxmm::Shared>>> =
        const { std::cell::RefCell::new(None) };
}

/// A fresh model by name: `oxmm` is oxmm's own ([`crate::model_oxmm`]),
/// `None` if its machine cannot boot; `host` is handled by the harness
/// itself (a twin host child, see [`crate::run::ModelSource::HostTwin`]),
/// so it is not made here.
pub fn by_name(name: &str) -> Option<Box<dyn Model>> {
    match name {
        "oxmm" => {
            let shared = SHARED.with(|s| {
                let mut s = s.borrow_mut();
                if s.is_none() {
                    *s = crate::model_oxmm::Shared::boot().ok();
                }
                s.clone()
            })?;
            Some(Box::new(crate::model_oxmm::OxmmModel::new(shared)))
        }
        _ => None,
    }
}
