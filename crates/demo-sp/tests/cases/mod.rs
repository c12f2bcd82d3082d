mod errors;
mod flow;
mod support;
