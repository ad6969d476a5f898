//! Pieces of generated code that the client and the server must agree on.
//!
//! Both halves are generated from the same [`Numbered`] interface, so the
//! wire layout is decided here once: the packed argument struct (zerocopy),
//! the argument tuple (postcard), the message and reply size expressions,
//! and the operation list with numbers. Sizes are emitted as constant
//! expressions (`size_of`, `PostcardMaxSize::MAX_SIZE`) rather than computed
//! by the generator, because only the compiler knows the user's types.

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

/// The type an argument has on the wire.
pub(crate) fn wire_ty(arg: &Arg) -> TokenStream {
    match &arg.recv {
        Recv::FromBytes => ty(&arg.ty),
        Recv::FromPrimitive(p) => ty(p),
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
/// is the packed struct), an upper bound for postcard.
pub(crate) fn message_size(op: &Operation, struct_name: &Ident) -> TokenStream {
    if op.args.is_empty() {
        return quote!(0);
    }
    match op.encoding {
        Encoding::Zerocopy => quote!(core::mem::size_of::<#struct_name>()),
        Encoding::Postcard => {
            let t = args_tuple_ty(op);
            quote!(<#t as idol_runtime::PostcardMaxSize>::MAX_SIZE)
        }
    }
}

/// The success type of an operation.
pub(crate) fn ok_ty(op: &Operation) -> TokenStream {
    match &op.reply {
        Reply::Simple(t) | Reply::Result { ok: t, .. } => ty(t),
    }
}

/// The error kind of an operation, if it has one.
pub(crate) fn err_kind(op: &Operation) -> Option<&ErrorKind> {
    match &op.reply {
        Reply::Simple(_) => None,
        Reply::Result { err, .. } => Some(err),
    }
}

/// The largest reply: max of the encoded ok value and the encoded error.
pub(crate) fn reply_size(op: &Operation) -> TokenStream {
    let ok = ok_ty(op);
    let ok_size = match op.encoding {
        Encoding::Zerocopy => quote!(core::mem::size_of::<#ok>()),
        Encoding::Postcard => quote!(<#ok as idol_runtime::PostcardMaxSize>::MAX_SIZE),
    };
    match err_kind(op) {
        Some(ErrorKind::Complex(e)) => {
            let e = ty(e);
            quote!(idol_runtime::size::max(#ok_size, <#e as idol_runtime::PostcardMaxSize>::MAX_SIZE))
        }
        // CLike errors travel in the response code, with an empty body.
        Some(ErrorKind::CLike(_)) | None => ok_size,
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
