//! `dbaasctl` as a user runs it: the real binary against the real local
//! mode (`dbaas-local`), each started as a process.

mod databases;
mod profiles;
mod support;
mod waits;
