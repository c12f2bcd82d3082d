mod admin;
mod authorize;
mod flow;
mod logout;
mod scenarios;
mod support;
mod token;
