//! Pieces of generated code that the client and the server must agree on.
//!
//! Both halves are generated from the same [`Numbered`] interface, so the
//! wire layout is decided here once: the packed argument struct (zerocopy),
//! the argument tuple (postcard or hubpack), the wire type of every
//! attributed type, the message and reply size expressions, and the
//! operation list with numbers. Sizes are emitted as constant expressions
//! (`size_of`, postcard's `MaxSize::POSTCARD_MAX_SIZE`, hubpack's
//! `SerializedSize::MAX_SIZE`) rather than computed by the generator,
//! because only the compiler knows the user's types.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::syntax::{Arg, Encoding, ErrorKind, Lease, Operation, Recv, Reply};
use crate::Numbered;

/// An operation with its number.
pub(crate) struct Op<'a> {
    pub name: &'a str,
    pub number: u16,
    pub op: &'a Operation,
}

/// Operations in declaration order.
pub(crate) fn ops(n: &Numbered) -> Vec<Op<'_>> {
    n.iface
        .ops
        .iter()
        .map(|(name, op)| Op {
            name,
            // Every operation got a number in `numbering::assign`.
            number: n.numbers.get(name).copied().unwrap_or(0),
            op,
        })
        .collect()
}

/// A Rust type from a validated type string.
pub(crate) fn ty(text: &str) -> TokenStream {
    match syn::parse_str::<syn::Type>(text) {
        Ok(t) => quote!(#t),
        // Unreachable after validation; emit something that fails loudly.
        Err(_) => quote!(compile_error!(#text)),
    }
}

/// An identifier from a validated name.
pub(crate) fn ident(name: &str) -> Ident {
    Ident::new(name, Span::call_site())
}

/// `snake_case` to `UpperCamelCase`.
pub(crate) fn camel(snake: &str) -> String {
    snake
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `#[doc]` attributes, one per line of `text`.
pub(crate) fn docs(text: &str) -> TokenStream {
    let lines = text.trim().lines().map(|l| {
        let l = format!(" {}", l.trim_end());
        quote!(#[doc = #l])
    });
    quote!(#(#lines)*)
}

/// The type an attributed type has on the wire.
pub(crate) fn wire_ty(arg: &Arg) -> TokenStream {
    match &arg.recv {
        Recv::FromBytes => ty(&arg.ty),
        Recv::FromPrimitive(p) | Recv::From(p, _) => ty(p),
    }
}

/// The receiver's conversion of `raw` (of the wire type) into the
/// attributed type, or `None` when the wire value is the type itself.
/// A `FromPrimitive` conversion calls `fallible` and appends `then` (the
/// server's `?`).
pub(crate) fn receive(
    arg: &Arg,
    raw: TokenStream,
    fallible: TokenStream,
    then: TokenStream,
) -> Option<TokenStream> {
    let t = ty(&arg.ty);
    match &arg.recv {
        Recv::FromBytes => None,
        Recv::FromPrimitive(p) => {
            let p = ty(p);
            Some(quote!(#fallible::<#p, #t>(#raw) #then))
        }
        Recv::From(_, None) => Some(quote!(<#t as core::convert::From<_>>::from(#raw))),
        Recv::From(_, Some(f)) => {
            let f = ty(f);
            Some(quote!(#f(#raw)))
        }
    }
}

/// The sender's conversion of `value` (of the attributed type) into the
/// wire type: `From<T> for wire type`.
pub(crate) fn send(arg: &Arg, value: TokenStream) -> TokenStream {
    match &arg.recv {
        Recv::FromBytes => value,
        Recv::FromPrimitive(p) | Recv::From(p, _) => {
            let p = ty(p);
            quote!(<#p as core::convert::From<_>>::from(#value))
        }
    }
}

/// The runtime's codec type of a serde encoding (`None` for zerocopy).
pub(crate) fn codec(encoding: Encoding) -> Option<TokenStream> {
    match encoding {
        Encoding::Zerocopy => None,
        Encoding::Postcard => Some(quote!(idol_runtime::Postcard)),
        Encoding::Hubpack => Some(quote!(idol_runtime::Hubpack)),
    }
}

/// The encoding of a Complex error: the operation's serde encoding, or
/// postcard for a zerocopy operation.
pub(crate) fn error_encoding(op: &Operation) -> Encoding {
    match op.encoding {
        Encoding::Zerocopy => Encoding::Postcard,
        other => other,
    }
}

/// The codec type of a Complex error.
pub(crate) fn error_codec(op: &Operation) -> TokenStream {
    codec(error_encoding(op)).unwrap_or_else(|| quote!(idol_runtime::Postcard))
}

/// The largest encoding of `t` in a serde encoding, from the encoding's own
/// (derived) bound; zerocopy values are exactly their size.
pub(crate) fn bound(encoding: Encoding, t: &TokenStream) -> TokenStream {
    match encoding {
        Encoding::Zerocopy => quote!(core::mem::size_of::<#t>()),
        Encoding::Postcard => quote!(<#t as idol_runtime::MaxSize>::POSTCARD_MAX_SIZE),
        Encoding::Hubpack => quote!(<#t as idol_runtime::hubpack::SerializedSize>::MAX_SIZE),
    }
}

/// The packed zerocopy struct carrying an operation's arguments, called
/// `name`, with `derives` (the client needs `IntoBytes`, the server
/// `TryFromBytes`).
pub(crate) fn packed_struct(name: &Ident, op: &Op<'_>, derives: TokenStream) -> TokenStream {
    let fields = op.op.args.iter().map(|(n, a)| {
        let n = ident(n);
        let t = wire_ty(a);
        quote!(#n: #t)
    });
    let doc = format!(" Wire layout of the arguments of `{}`.", op.name);
    quote! {
        #[doc = #doc]
        #[derive(#derives)]
        #[repr(C, packed)]
        struct #name { #(#fields,)* }
    }
}

/// The tuple type of postcard arguments.
pub(crate) fn args_tuple_ty(op: &Operation) -> TokenStream {
    let tys = op.args.iter().map(|(_, a)| wire_ty(a));
    quote!((#(#tys,)*))
}

/// The size of an operation's message: exact for zerocopy (`struct_name`
/// is the packed struct), an upper bound for a serde encoding. A tuple's
/// postcard or hubpack encoding is its fields' encodings back to back, so
/// its bound is the sum of theirs (for any number of arguments).
pub(crate) fn message_size(op: &Operation, struct_name: &Ident) -> TokenStream {
    if op.args.is_empty() {
        return quote!(0);
    }
    match op.encoding {
        Encoding::Zerocopy => quote!(core::mem::size_of::<#struct_name>()),
        encoding => {
            let bounds = op.args.iter().map(|(_, a)| bound(encoding, &wire_ty(a)));
            quote!(#(#bounds)+*)
        }
    }
}

/// The success value of an operation, as an attributed type.
pub(crate) fn ok_arg(op: &Operation) -> &Arg {
    match &op.reply {
        Reply::Simple(t) | Reply::Result { ok: t, .. } => t,
    }
}

/// The success type of an operation, as the handler and caller see it.
pub(crate) fn ok_ty(op: &Operation) -> TokenStream {
    ty(&ok_arg(op).ty)
}

/// The error an operation can report besides server death (CLike or
/// Complex), if it has one.
pub(crate) fn err_kind(op: &Operation) -> Option<&ErrorKind> {
    match &op.reply {
        Reply::Simple(_)
        | Reply::Result {
            err: ErrorKind::ServerDeath,
            ..
        } => None,
        Reply::Result { err, .. } => Some(err),
    }
}

/// The Rust type of a CLike or Complex error.
pub(crate) fn err_ty(kind: &ErrorKind) -> TokenStream {
    match kind {
        ErrorKind::CLike(e) | ErrorKind::Complex(e) => ty(e),
        ErrorKind::ServerDeath => quote!(idol_runtime::ServerRestarted),
    }
}

/// The largest reply: max of the encoded ok value and the encoded error.
pub(crate) fn reply_size(op: &Operation) -> TokenStream {
    let ok_size = bound(op.encoding, &wire_ty(ok_arg(op)));
    match err_kind(op) {
        Some(ErrorKind::Complex(e)) => {
            let e_size = bound(error_encoding(op), &ty(e));
            quote!(idol_runtime::size::max(#ok_size, #e_size))
        }
        // CLike errors travel in the response code, with an empty body.
        _ => ok_size,
    }
}

/// Whether the lease is lent for reading only.
pub(crate) fn read_only(lease: &Lease) -> bool {
    lease.read && !lease.write
}

/// `TestAddRequest`-style name of a packed struct.
pub(crate) fn struct_name(iface: &str, op: &str, suffix: &str) -> Ident {
    format_ident!("{}{}{}", iface, camel(op), suffix)
}

/// Pretty-prints generated items under a "do not edit" header.
pub(crate) fn render(header: &str, tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => format!("{header}\n\n{}", prettyplease::unparse(&file)),
        // Only a generator bug gets here; keep the raw tokens so the
        // compiler's error points at something.
        Err(e) => format!("{header}\n// idol: could not pretty-print: {e}\n{tokens}\n"),
    }
}

/// The header of a generated file.
pub(crate) fn header(n: &Numbered, what: &str) -> String {
    let file = n
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "// {what} for interface `{}`, generated by build/idol from {file}.\n\
         // Do not edit: change the .idol file instead.",
        n.iface.name
    )
}
