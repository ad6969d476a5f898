//! Client stub generation.
//!
//! For interface `Foo` the stub is a `pub struct Foo` holding the server's
//! [`TaskId`](abi::TaskId) in a `Cell` (so methods take `&self`), with one
//! method per operation. Each method encodes its arguments, lends its
//! leases, SENDs, and turns the response code into a `Result`:
//!
//! - a dead code refreshes the stored id; an idempotent operation then
//!   retries on the new incarnation, any other returns the error type's
//!   `ServerRestarted` (the `ServerDeath` trait), so a client never panics
//!   because its server died;
//! - so an idempotent operation without an error of its own returns `T`
//!   itself, not a `Result` whose error cannot happen; a non-idempotent
//!   one with a `Simple` reply or `err: ServerDeath` returns
//!   `Result<T, idol_runtime::ServerRestarted>`;
//! - an ok value with `recv:` travels as its wire type and is converted
//!   here (a `FromPrimitive` value the type refuses is a bad reply);
//! - a reply that breaks the interface (unknown code, undecodable body)
//!   panics in `idol_runtime::client::bad_reply`: the server broke the
//!   contract, which is a bug to find, not a condition to handle.

use std::path::Path;

use proc_macro2::TokenStream;
use quote::quote;

use crate::common::{
    args_tuple_ty, codec, docs, err_kind, err_ty, error_codec, header, ident, message_size, ok_arg,
    ok_ty, ops, packed_struct, read_only, receive, render, reply_size, send, struct_name, ty,
    wire_ty, Op,
};
use crate::syntax::{Encoding, ErrorKind, Lease, Recv};
use crate::{emit, load_numbered, Error, Numbered, Options};

/// Generates the client stub of `idl_path` into `OUT_DIR/<out_file>`; call
/// from an `-api` crate's `build.rs` and `include!` the result.
///
/// # Errors
/// Any [`Error`] of loading, numbering or writing.
pub fn build_client_stub(idl_path: impl AsRef<Path>, out_file: &str) -> Result<(), Error> {
    let numbered = load_numbered(idl_path, &Options::from_env())?;
    emit(&numbered, out_file, &generate(&numbered))
}

/// The client stub as formatted Rust source.
#[must_use]
pub fn generate(n: &Numbered) -> String {
    let name = ident(&n.iface.name);
    let doc = docs(&n.iface.doc);
    let ops = ops(n);
    let methods = ops.iter().map(|op| method(&n.iface.name, op));
    // The numbers the kernel sees in SEND, for tools that act on a call by
    // its operation (an armed kill at a server's REPLY to it).
    let numbers = ops.iter().map(|op| {
        let c = quote::format_ident!("OP_{}", op.name.to_uppercase());
        let d = format!(" Operation number of `{}`.", op.name);
        let v = op.number;
        quote! {
            #[doc = #d]
            pub const #c: u16 = #v;
        }
    });
    let structs = ops
        .iter()
        .filter(|op| op.op.encoding == Encoding::Zerocopy && !op.op.args.is_empty())
        .map(|op| {
            packed_struct(
                &struct_name(&n.iface.name, op.name, "Request"),
                op,
                quote!(zerocopy::IntoBytes, zerocopy::Immutable),
            )
        });
    // The error type of every non-idempotent operation must be able to say
    // "the server restarted" (an idempotent one retries instead, as in
    // Hubris, so its error type need not).
    let mut error_types: Vec<String> = ops
        .iter()
        .filter(|op| !op.op.idempotent)
        .filter_map(|op| match err_kind(op.op) {
            Some(ErrorKind::CLike(e) | ErrorKind::Complex(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    error_types.sort();
    error_types.dedup();
    let death_checks = error_types.iter().map(|e| {
        let e = ty(e);
        quote!(const _: () = idol_runtime::assert_server_death::<#e>();)
    });
    let tokens = quote! {
        #doc
        ///
        /// A handle on the server task. It follows the server across
        /// restarts: after a dead code it points at the new incarnation.
        #[derive(Clone, Debug)]
        pub struct #name {
            current: core::cell::Cell<userlib::TaskId>,
        }

        impl From<userlib::TaskId> for #name {
            fn from(id: userlib::TaskId) -> Self {
                #name { current: core::cell::Cell::new(id) }
            }
        }

        impl #name {
            /// A handle on the task at `index`, at its current generation.
            pub fn from_index(index: userlib::TaskIndex) -> Self {
                Self::from(userlib::sys_refresh_task_id(index))
            }

            #(#numbers)*

            /// The server's id as this handle last knew it.
            pub fn task_id(&self) -> userlib::TaskId {
                self.current.get()
            }

            #(#methods)*
        }

        #(#death_checks)*

        #(#structs)*
    };
    render(&header(n, "Client stub"), tokens)
}

/// The parameter type a caller passes for a lease.
fn lease_param(lease: &Lease) -> TokenStream {
    let t = ty(&lease.ty);
    if read_only(lease) {
        quote!(&#t)
    } else {
        quote!(&mut #t)
    }
}

/// The `userlib::Lease` built from a lease parameter; mutable ones are
/// reborrowed so an idempotent retry can lend them again.
fn lease_value(name: &str, lease: &Lease) -> TokenStream {
    let n = ident(name);
    let ctor = match (lease.read, lease.write) {
        (true, false) => quote!(read_only),
        (false, _) => quote!(write_only),
        (true, true) => quote!(read_write),
    };
    match (lease.is_bytes(), read_only(lease)) {
        (true, true) => quote!(userlib::Lease::#ctor(#n)),
        (true, false) => quote!(userlib::Lease::#ctor(&mut *#n)),
        (false, true) => quote!(userlib::Lease::#ctor(zerocopy::IntoBytes::as_bytes(#n))),
        (false, false) => {
            quote!(userlib::Lease::#ctor(zerocopy::IntoBytes::as_mut_bytes(&mut *#n)))
        }
    }
}

fn method(iface: &str, op: &Op<'_>) -> TokenStream {
    let o = op.op;
    let name = ident(op.name);
    let number = proc_macro2::Literal::u16_unsuffixed(op.number);
    let doc = docs(&o.doc);
    let params = o
        .args
        .iter()
        .map(|(n, a)| {
            let n2 = ident(n);
            let t = ty(&a.ty);
            quote!(#n2: #t)
        })
        .chain(o.leases.iter().map(|(n, l)| {
            let n2 = ident(n);
            let t = lease_param(l);
            quote!(#n2: #t)
        }));
    let ok = ok_ty(o);
    // What the method returns, and the error a restart becomes (for a
    // non-idempotent operation).
    let (ret, death_err) = match (err_kind(o), o.idempotent) {
        (Some(kind), _) => {
            let e = err_ty(kind);
            (quote!(Result<#ok, #e>), e)
        }
        (None, true) => (quote!(#ok), quote!(idol_runtime::ServerRestarted)),
        (None, false) => (
            quote!(Result<#ok, idol_runtime::ServerRestarted>),
            quote!(idol_runtime::ServerRestarted),
        ),
    };
    let returns_result = err_kind(o).is_some() || !o.idempotent;
    let reply_size = reply_size(o);

    // Encoding the request, once, before any retry.
    let request_struct = struct_name(iface, op.name, "Request");
    let values: Vec<TokenStream> = o
        .args
        .iter()
        .map(|(n, a)| {
            let n = ident(n);
            send(a, quote!(#n))
        })
        .collect();
    let (encode, request) = if o.args.is_empty() {
        (quote!(), quote!(&[]))
    } else {
        match codec(o.encoding) {
            None => {
                let fields = o.args.iter().zip(&values).map(|((n, a), v)| {
                    let n = ident(n);
                    match a.recv {
                        Recv::FromBytes => quote!(#n),
                        _ => quote!(#n: #v),
                    }
                });
                (
                    quote!(let request = #request_struct { #(#fields,)* };),
                    quote!(zerocopy::IntoBytes::as_bytes(&request)),
                )
            }
            Some(c) => {
                let size = message_size(o, &request_struct);
                let tuple = args_tuple_ty(o);
                (
                    quote! {
                        const REQUEST_SIZE: usize = #size;
                        let mut request_buf = [0u8; REQUEST_SIZE];
                        let request: &[u8] = idol_runtime::client::encode::<#c, #tuple>(
                            &(#(#values,)*),
                            &mut request_buf,
                        );
                    },
                    quote!(request),
                )
            }
        }
    };
    let leases = o.leases.iter().map(|(n, l)| lease_value(n, l));

    // The ok value: decode the wire type, then convert it.
    let ok_attr = ok_arg(o);
    let wire = wire_ty(ok_attr);
    let unit_ok = ok_attr.ty.trim() == "()" && ok_attr.recv == Recv::FromBytes;
    let raw = match codec(o.encoding) {
        None => quote!(idol_runtime::client::decode_zerocopy::<#wire>(reply_body)),
        Some(c) => quote!(idol_runtime::client::decode::<#c, #wire>(reply_body)),
    };
    let value = receive(
        ok_attr,
        quote!(raw),
        quote!(idol_runtime::client::from_primitive),
        quote!(),
    )
    .map_or_else(
        || raw.clone(),
        |convert| {
            quote!({
                let raw = #raw;
                #convert
            })
        },
    );
    // What the Ok arm evaluates to (`once`) or returns (`retry`, inside the
    // idempotent loop). A zerocopy unit reply is an empty body; check that
    // rather than "decode" a `()`.
    let (ok_once, ok_retry) = match (unit_ok && o.encoding == Encoding::Zerocopy, returns_result) {
        (true, true) => (
            quote!({
                idol_runtime::client::expect_empty(reply_body);
                Ok(())
            }),
            quote!({
                idol_runtime::client::expect_empty(reply_body);
                return Ok(());
            }),
        ),
        (true, false) => (
            quote!(idol_runtime::client::expect_empty(reply_body)),
            quote!({
                idol_runtime::client::expect_empty(reply_body);
                return;
            }),
        ),
        (false, true) => (quote!(Ok(#value)), quote!(return Ok(#value))),
        (false, false) => (quote!(#value), quote!(return #value)),
    };
    let err_value = match err_kind(o) {
        Some(ErrorKind::CLike(_)) => Some((
            quote!(idol_runtime::wire::ReplyCode::CLike(code)),
            quote!(Err(idol_runtime::client::clike(code))),
        )),
        Some(ErrorKind::Complex(e)) => {
            let e = ty(e);
            let c = error_codec(o);
            Some((
                quote!(idol_runtime::wire::ReplyCode::Complex),
                quote!(Err(idol_runtime::client::decode::<#c, #e>(reply_body))),
            ))
        }
        _ => None,
    };
    let send_call = quote! {
        let (reply_code, reply_body) = userlib::sys_send_into(
            self.current.get(),
            OPERATION,
            #request,
            &mut reply_buf,
            &[#(#leases),*],
        );
    };
    let body = if o.idempotent {
        let error_arm = err_value.map(|(pat, v)| quote!(#pat => return #v,));
        quote! {
            // Idempotent: after a restart, resend to the new incarnation.
            loop {
                #send_call
                match idol_runtime::wire::ReplyCode::classify(reply_code) {
                    idol_runtime::wire::ReplyCode::Ok => #ok_retry,
                    idol_runtime::wire::ReplyCode::Dead(_) => {
                        idol_runtime::client::refresh(&self.current);
                    }
                    #error_arm
                    _ => idol_runtime::client::bad_reply(),
                }
            }
        }
    } else {
        let error_arm = err_value.map(|(pat, v)| quote!(#pat => #v,));
        quote! {
            #send_call
            match idol_runtime::wire::ReplyCode::classify(reply_code) {
                idol_runtime::wire::ReplyCode::Ok => #ok_once,
                idol_runtime::wire::ReplyCode::Dead(_) => {
                    // Not idempotent: the request may have taken effect, so
                    // report the restart instead of resending.
                    idol_runtime::client::refresh(&self.current);
                    Err(<#death_err as idol_runtime::ServerDeath>::server_restarted())
                }
                #error_arm
                _ => idol_runtime::client::bad_reply(),
            }
        }
    };
    let number_doc = format!(" Operation number {}.", op.number);
    quote! {
        #doc
        ///
        #[doc = #number_doc]
        pub fn #name(&self, #(#params),*) -> #ret {
            const OPERATION: u16 = #number;
            const REPLY_SIZE: usize = #reply_size;
            #encode
            // Not zeroed: the kernel writes the reply, and only what it wrote is read.
            let mut reply_buf = [core::mem::MaybeUninit::<u8>::uninit(); REPLY_SIZE];
            #body
        }
    }
}
