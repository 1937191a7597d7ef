pub mod read;
pub mod verify;

mod crypt;
mod dsig;
mod error;
mod keys;
mod xml;
