//! Server support generation.
//!
//! For interface `Foo` (snake name `foo`) the generated file holds:
//! - `trait FooServer`: `notification_mask` and `handle_notification`
//!   (required, so a server states what it does with notifications), and
//!   one method per operation taking `&RecvMessage`, the decoded arguments
//!   and the leases as `idol_runtime::Leased<R|W|RW, T>`, returning
//!   `Result<T, RequestError<E>>` (`E` = `Infallible` for `Simple` replies);
//! - `FOO_BUFFER_SIZE`, the largest message, `FOO_REPLY_SIZE`, the largest
//!   reply, `FooBuffers`, the server's message buffer and reply outbox, and
//!   `dispatch_foo(&mut server, &mut buffers)`, which receives one message
//!   and runs it through `idol_runtime::dispatch` (see its module docs for
//!   the order of checks); the reply a handler leaves in the outbox is sent
//!   by the next receive (REPLY_RECV), or at once by
//!   `FooBuffers::send_reply_now` for a server with work to do between two
//!   dispatches;
//! - one `handle_foo_<op>` per operation, whose constant `OpSpec` holds the
//!   sizes, lease count and the access list resolved from the manifest.
//!
//! Invariant: a handler runs only for a request that passed every check,
//! and a server's reply can never be too large for the client, because the
//! client's capacity was checked against the largest reply beforehand.

use std::path::Path;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

pub use crate::acl::{acl_from_task_env, AccessList, Rule};
use crate::common::{
    args_tuple_ty, codec, docs, err_kind, err_ty, error_codec, header, ident, message_size, ok_arg,
    ok_ty, ops, packed_struct, receive, render, reply_size, send, struct_name, ty, wire_ty, Op,
};
use crate::syntax::{Encoding, ErrorKind, Lease};
use crate::{emit, load_numbered, Error, Numbered, Options};

/// Generates server support for `idl_path` into `OUT_DIR/<out_file>` with
/// the access list `acl` (see [`acl_from_task_env`]); call from a server's
/// `build.rs` and `include!` the result.
///
/// # Errors
/// Any [`Error`] of loading, numbering or writing, or an access list that
/// names operations the interface lacks.
pub fn build_server_support(
    idl_path: impl AsRef<Path>,
    out_file: &str,
    acl: &AccessList,
) -> Result<(), Error> {
    let numbered = load_numbered(idl_path, &Options::from_env())?;
    if let Some(op) = acl
        .rules
        .keys()
        .find(|op| numbered.iface.ops.get(op).is_none())
    {
        return Err(Error::Access {
            task: String::new(),
            problem: format!("interface {} has no operation `{op}`", numbered.iface.name),
        });
    }
    emit(&numbered, out_file, &generate(&numbered, acl))
}

/// `UpperCamelCase` to `snake_case`.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The server support as formatted Rust source.
#[must_use]
pub fn generate(n: &Numbered, acl: &AccessList) -> String {
    let iface = &n.iface.name;
    let snake_name = snake(iface);
    let trait_name = format_ident!("{}Server", iface);
    let dispatch = format_ident!("dispatch_{}", snake_name);
    let route = format_ident!("route_{}_request", snake_name);
    let buffer_size = format_ident!("{}_BUFFER_SIZE", snake_name.to_ascii_uppercase());
    let reply_max = format_ident!("{}_REPLY_SIZE", snake_name.to_ascii_uppercase());
    let buffers = format_ident!("{}Buffers", iface);
    let ops = ops(n);
    let reply_sizes = ops.iter().map(|op| reply_size(op.op));

    let sizes = ops
        .iter()
        .map(|op| message_size(op.op, &struct_name(iface, op.name, "Args")));
    let methods = ops.iter().map(trait_method);
    let arms = ops.iter().map(|op| {
        let number = proc_macro2::Literal::u16_unsuffixed(op.number);
        let handler = handler_name(&snake_name, op.name);
        quote!(#number => #handler(server, msg, body, outbox),)
    });
    let handlers = ops
        .iter()
        .map(|op| handler(n, &snake_name, &trait_name, op, acl));
    let structs = ops
        .iter()
        .filter(|op| op.op.encoding == Encoding::Zerocopy && !op.op.args.is_empty())
        .map(|op| {
            packed_struct(
                &struct_name(iface, op.name, "Args"),
                op,
                quote!(
                    zerocopy::TryFromBytes,
                    zerocopy::KnownLayout,
                    zerocopy::Immutable
                ),
            )
        });
    let trait_doc = docs(&n.iface.doc);
    let dispatch_doc = docs(&format!(
        "Receives one message and handles it: notifications go to\n\
         [`{trait_name}::handle_notification`], requests that pass every check to\n\
         their [`{trait_name}`] method, and bad requests are reply-faulted."
    ));
    let tokens = quote! {
        /// Bytes the dispatch buffer needs: the largest message of any
        /// operation.
        pub const #buffer_size: usize = idol_runtime::size::max_of(&[#(#sizes),*]);

        /// Bytes the reply outbox needs: the largest reply of any
        /// operation.
        pub const #reply_max: usize = idol_runtime::size::max_of(&[#(#reply_sizes),*]);

        /// The server's message buffer and reply outbox, kept across
        /// dispatches (a reply leaves with the next receive).
        pub type #buffers = idol_runtime::dispatch::Buffers<#buffer_size, #reply_max>;

        #trait_doc
        ///
        /// Implement this and call the dispatch function in a loop.
        pub trait #trait_name {
            /// The notification bits this server wants to receive.
            fn notification_mask(&self) -> u64;

            /// Called with the bits that fired (within the mask).
            fn handle_notification(&mut self, bits: u64);

            #(#methods)*
        }

        #dispatch_doc
        pub fn #dispatch<S: #trait_name>(server: &mut S, buffers: &mut #buffers) {
            let mask = server.notification_mask();
            idol_runtime::dispatch::serve_one(
                server,
                buffers,
                mask,
                S::handle_notification,
                #route::<S>,
            );
        }

        /// Routes a request by operation number.
        fn #route<S: #trait_name>(
            server: &mut S,
            msg: &userlib::RecvMessage,
            body: &[u8],
            outbox: &mut idol_runtime::dispatch::Outbox<#reply_max>,
        ) -> Result<(), idol_runtime::ClientError> {
            match msg.operation {
                #(#arms)*
                _ => Err(idol_runtime::ClientError::UnknownOperation),
            }
        }

        #(#handlers)*

        #(#structs)*
    };
    render(&header(n, "Server support"), tokens)
}

fn handler_name(snake_iface: &str, op: &str) -> proc_macro2::Ident {
    format_ident!("handle_{}_{}", snake_iface, op)
}

/// The attribute marker of a lease.
fn lease_attr(lease: &Lease) -> TokenStream {
    match (lease.read, lease.write) {
        (true, false) => quote!(idol_runtime::R),
        (false, _) => quote!(idol_runtime::W),
        (true, true) => quote!(idol_runtime::RW),
    }
}

/// The handler's type for a lease.
fn leased_ty(lease: &Lease) -> TokenStream {
    let attr = lease_attr(lease);
    let t = ty(&lease.ty);
    quote!(idol_runtime::Leased<#attr, #t>)
}

/// The same type as a path expression (turbofish), for calling constructors.
fn leased_path(lease: &Lease) -> TokenStream {
    let attr = lease_attr(lease);
    let t = ty(&lease.ty);
    quote!(idol_runtime::Leased::<#attr, #t>)
}

/// The error type inside `RequestError`.
fn runtime_err(op: &Op<'_>) -> TokenStream {
    match err_kind(op.op) {
        None => quote!(core::convert::Infallible),
        Some(kind) => err_ty(kind),
    }
}

fn trait_method(op: &Op<'_>) -> TokenStream {
    let name = ident(op.name);
    let doc = docs(&op.op.doc);
    let params = op
        .op
        .args
        .iter()
        .map(|(n, a)| {
            let n = ident(n);
            let t = ty(&a.ty);
            quote!(#n: #t)
        })
        .chain(op.op.leases.iter().map(|(n, l)| {
            let n = ident(n);
            let t = leased_ty(l);
            quote!(#n: #t)
        }));
    let ok = ok_ty(op.op);
    let err = runtime_err(op);
    // The trait mirrors the interface: an operation with many arguments is the interface's
    // choice, so its handler may take them all (self and msg count too).
    let many = (op.op.args.len() + op.op.leases.len() + 2 > 7)
        .then(|| quote!(#[allow(clippy::too_many_arguments)]));
    quote! {
        #doc
        #many
        fn #name(
            &mut self,
            msg: &userlib::RecvMessage,
            #(#params),*
        ) -> Result<#ok, idol_runtime::RequestError<#err>>;
    }
}

fn acl_expr(acl: &AccessList, op: &str) -> (TokenStream, String) {
    match acl.rule(op) {
        Rule::Any => (
            quote!(idol_runtime::dispatch::Acl::Any),
            "Callers: any task.".to_string(),
        ),
        Rule::Only(tasks) => {
            let mask = tasks.iter().fold(0u64, |m, (_, i)| m | (1u64 << i));
            let names: Vec<String> = tasks.iter().map(|(n, i)| format!("`{n}` ({i})")).collect();
            let text = if names.is_empty() {
                "Callers: none (empty access list).".to_string()
            } else {
                format!("Callers: {}.", names.join(", "))
            };
            // Binary, so a reader sees which task indices are set.
            let lit = syn::LitInt::new(&format!("0b{mask:b}"), proc_macro2::Span::call_site());
            (quote!(idol_runtime::dispatch::Acl::Only(#lit)), text)
        }
    }
}

fn handler(
    n: &Numbered,
    snake_iface: &str,
    trait_name: &proc_macro2::Ident,
    op: &Op<'_>,
    acl: &AccessList,
) -> TokenStream {
    let o = op.op;
    let name = handler_name(snake_iface, op.name);
    let reply_max = format_ident!("{}_REPLY_SIZE", snake_iface.to_ascii_uppercase());
    let method = ident(op.name);
    let args_struct = struct_name(&n.iface.name, op.name, "Args");
    let message = message_size(o, &args_struct);
    let message_rule = match o.encoding {
        Encoding::Zerocopy => quote!(idol_runtime::dispatch::MessageSize::Exact(#message)),
        Encoding::Postcard | Encoding::Hubpack => {
            quote!(idol_runtime::dispatch::MessageSize::AtMost(#message))
        }
    };
    let reply_size = reply_size(o);
    let lease_count = proc_macro2::Literal::usize_unsuffixed(o.leases.len());
    // With no arguments the size check is the whole decoding.
    let body = if o.args.is_empty() {
        quote!(_body)
    } else {
        quote!(body)
    };
    let (acl, callers) = acl_expr(acl, op.name);
    let doc = docs(&format!(
        "Checks, decodes and handles operation `{}` (number {}).\n{callers}",
        op.name, op.number
    ));

    let names: Vec<_> = o.args.iter().map(|(a, _)| ident(a)).collect();
    let decode = if o.args.is_empty() {
        // The size check already proved the message empty.
        quote!()
    } else {
        match codec(o.encoding) {
            None => quote! {
                let #args_struct { #(#names),* } = idol_runtime::dispatch::decode_zerocopy(body)?;
            },
            Some(c) => {
                let tuple = args_tuple_ty(o);
                quote! {
                    let (#(#names,)*) = idol_runtime::dispatch::decode::<#c, #tuple>(body)?;
                }
            }
        }
    };
    let converts = o.args.iter().filter_map(|(a, arg)| {
        let a2 = ident(a);
        let t = ty(&arg.ty);
        receive(
            arg,
            quote!(#a2),
            quote!(idol_runtime::dispatch::from_primitive),
            quote!(?),
        )
        .map(|convert| quote!(let #a2: #t = #convert;))
    });
    let leases = o.leases.iter().enumerate().map(|(i, (l, lease))| {
        let i = proc_macro2::Literal::usize_unsuffixed(i);
        let l2 = ident(l);
        let t = leased_path(lease);
        if lease.is_bytes() {
            let max = match lease.max_len {
                Some(m) => {
                    let m = proc_macro2::Literal::usize_unsuffixed(m as usize);
                    quote!(Some(#m))
                }
                None => quote!(None),
            };
            quote!(let #l2 = #t::from_message(msg, #i, #max)?;)
        } else {
            quote!(let #l2 = #t::typed_from_message(msg, #i)?;)
        }
    });
    let call_args = o
        .args
        .iter()
        .map(|(a, _)| ident(a))
        .chain(o.leases.iter().map(|(l, _)| ident(l)));

    let ok_attr = ok_arg(o);
    let wire = wire_ty(ok_attr);
    let to_wire = if ok_attr.recv == crate::syntax::Recv::FromBytes {
        quote!()
    } else {
        let v = send(ok_attr, quote!(result_ok));
        quote!(let result_ok: #wire = #v;)
    };
    let ok_arm = match codec(o.encoding) {
        // The value is sent from where the handler returned it: no copy into a binding first
        // (a `status` reply is 112 bytes).
        None if ok_attr.recv == crate::syntax::Recv::FromBytes => quote! {
            Ok(ref result_ok) => outbox.zerocopy(msg.sender, result_ok),
        },
        None => quote! {
            Ok(result_ok) => {
                #to_wire
                outbox.zerocopy(msg.sender, &result_ok)
            }
        },
        Some(c) => quote! {
            Ok(result_ok) => {
                #to_wire
                outbox.encoded::<#c, #wire>(msg.sender, &result_ok)
            }
        },
    };
    let err_arm = match err_kind(o) {
        Some(ErrorKind::CLike(_)) => quote! {
            Err(idol_runtime::RequestError::Runtime(result_err)) => {
                outbox.clike(msg.sender, &result_err)
            }
        },
        Some(ErrorKind::Complex(e)) => {
            let e = ty(e);
            let c = error_codec(o);
            quote! {
                Err(idol_runtime::RequestError::Runtime(result_err)) => {
                    outbox.complex::<#c, #e>(msg.sender, &result_err)
                }
            }
        }
        _ => quote!(Err(idol_runtime::RequestError::Runtime(never)) => match never {},),
    };
    // Each handler is a function of its own: the router stays a jump table, and an operation
    // pays only for the registers and stack its own handler needs, not for the largest one's.
    quote! {
        #doc
        #[inline(never)]
        fn #name<S: #trait_name>(
            server: &mut S,
            msg: &userlib::RecvMessage,
            #body: &[u8],
            outbox: &mut idol_runtime::dispatch::Outbox<#reply_max>,
        ) -> Result<(), idol_runtime::ClientError> {
            const REPLY_SIZE: usize = #reply_size;
            const SPEC: idol_runtime::dispatch::OpSpec = idol_runtime::dispatch::OpSpec {
                message: #message_rule,
                reply_size: REPLY_SIZE,
                leases: #lease_count,
                acl: #acl,
            };
            idol_runtime::dispatch::check_request(msg, &SPEC)?;
            #decode
            #(#converts)*
            #(#leases)*
            match server.#method(msg, #(#call_args),*) {
                #ok_arm
                #err_arm
                Err(idol_runtime::RequestError::Fail(fail)) => return Err(fail),
            }
            Ok(())
        }
    }
}
