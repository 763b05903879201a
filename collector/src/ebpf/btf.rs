//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): byte offsets of struct
//! members, so the eBPF programs can walk kernel structs of *this* kernel.
//!
//! Rust eBPF has no CO-RE relocations, and member offsets move between kernels (in 6.18
//! `file.f_path` sits in an anonymous union), so they are looked up here at load time and
//! passed to the programs as read-only globals. Only what that needs is parsed: the header,
//! the string section, and every type record (to know where each one ends), keeping structs,
//! unions and the modifiers in front of them. Anonymous struct and union members are searched
//! through, as C name lookup does.
//!
//! It also writes the one BTF the loader is given: a stand-in that holds only the iterator's
//! function, at the type id the kernel's BTF gives it ([`stand_in`]). The programs have no
//! CO-RE relocations, so that function's id is all the loader needs from the kernel's BTF;
//! holding the loader library's full parse of it costs about 11 MiB, 17 MiB while parsing.
//!
//! Owns reading BTF; it may not load programs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What went wrong reading BTF or finding a member.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read.
    #[error("cannot read BTF from {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The data is not BTF this reader understands.
    #[error("malformed BTF: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
    /// No struct or union of that name.
    #[error("BTF has no struct `{name}`")]
    NoStruct {
        /// The struct.
        name: String,
    },
    /// No function of that name.
    #[error("BTF has no function `{name}`")]
    NoFunc {
        /// The function.
        name: String,
    },
    /// The struct has no member of that name (nor any anonymous member holding one).
    #[error("struct `{ty}` has no member `{member}`")]
    NoMember {
        /// The struct.
        ty: String,
        /// The member.
        member: String,
    },
}

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Debug, Clone)]
struct Member {
    /// Offset of the name in the string section (0: anonymous).
    name: u32,
    ty: u32,
    /// Offset in bits from the start of the struct.
    bit_offset: u32,
}

#[derive(Debug, Clone)]
enum Type {
    /// A struct or union (name as an offset in the string section).
    Composite { name: u32, members: Vec<Member> },
    /// typedef, const, volatile, restrict, type tag: look through to `ty`.
    Alias { ty: u32 },
    /// A function (name as an offset in the string section).
    Func { name: u32 },
    /// Anything else.
    Other,
}

/// The parsed types of one BTF blob.
#[derive(Debug)]
pub struct Btf {
    /// By type id (index 0 is `void`).
    types: Vec<Type>,
    /// Struct/union ids by name (the first with members wins).
    by_name: HashMap<String, u32>,
    /// The string section.
    strings: Vec<u8>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| BtfError::Malformed {
            reason: format!("truncated at byte {at}"),
        })
}

impl Btf {
    /// The running kernel's BTF.
    pub fn kernel() -> Result<Btf, BtfError> {
        Self::from_file(Path::new("/sys/kernel/btf/vmlinux"))
    }

    /// BTF from a file.
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&data)
    }

    /// BTF from bytes (little-endian only: these machines are x86_64).
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        let malformed = |reason: &str| BtfError::Malformed {
            reason: reason.to_string(),
        };
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err(malformed("bad magic (big-endian BTF is not supported)"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_data = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or_else(|| malformed("type section out of bounds"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or_else(|| malformed("string section out of bounds"))?;
        let string = |off: u32| -> &[u8] {
            let rest = strings.get(off as usize..).unwrap_or(&[]);
            &rest[..memchr::memchr(0, rest).unwrap_or(rest.len())]
        };

        let mut types = vec![Type::Other];
        let mut by_name = HashMap::new();
        let mut at = 0;
        while at < types_data.len() {
            let name_off = u32_at(types_data, at)?;
            let info = u32_at(types_data, at + 4)?;
            let size_or_type = u32_at(types_data, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let id = types.len() as u32;
            let ty = match kind {
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let offset = u32_at(types_data, m + 8)?;
                        members.push(Member {
                            name: u32_at(types_data, m)?,
                            ty: u32_at(types_data, m + 4)?,
                            // With kind_flag, the top 8 bits are a bitfield size.
                            bit_offset: if kind_flag {
                                offset & 0xff_ffff
                            } else {
                                offset
                            },
                        });
                    }
                    at += vlen * 12;
                    let name = string(name_off);
                    if !name.is_empty() && vlen > 0 {
                        by_name
                            .entry(String::from_utf8_lossy(name).into_owned())
                            .or_insert(id);
                    }
                    Type::Composite {
                        name: name_off,
                        members,
                    }
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Alias { ty: size_or_type }
                }
                KIND_INT | KIND_VAR | KIND_DECL_TAG => {
                    at += 4;
                    Type::Other
                }
                KIND_ARRAY => {
                    at += 12;
                    Type::Other
                }
                KIND_ENUM | KIND_FUNC_PROTO => {
                    at += vlen * 8;
                    Type::Other
                }
                KIND_DATASEC | KIND_ENUM64 => {
                    at += vlen * 12;
                    Type::Other
                }
                KIND_FUNC => Type::Func { name: name_off },
                KIND_PTR | KIND_FWD | KIND_FLOAT => Type::Other,
                other => {
                    return Err(BtfError::Malformed {
                        reason: format!("unknown type kind {other} (type id {id})"),
                    });
                }
            };
            types.push(ty);
        }
        Ok(Btf {
            types,
            by_name,
            strings: strings.to_vec(),
        })
    }

    fn name(&self, off: u32) -> &str {
        let rest = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = memchr::memchr(0, rest).unwrap_or(rest.len());
        std::str::from_utf8(&rest[..end]).unwrap_or("")
    }

    /// The struct or union behind `id`, looking through typedefs and qualifiers.
    fn composite(&self, mut id: u32) -> Option<(&str, &[Member])> {
        for _ in 0..32 {
            match self.types.get(id as usize)? {
                Type::Composite { name, members } => return Some((self.name(*name), members)),
                Type::Alias { ty } => id = *ty,
                Type::Func { .. } | Type::Other => return None,
            }
        }
        None
    }

    /// Bit offset and type of `member` in the composite `id`, searching anonymous members.
    fn find(&self, id: u32, member: &str) -> Option<(u32, u32)> {
        let (_, members) = self.composite(id)?;
        for m in members {
            if m.name != 0 && self.name(m.name) == member {
                return Some((m.bit_offset, m.ty));
            }
            if self.name(m.name).is_empty()
                && let Some((inner, ty)) = self.find(m.ty, member)
            {
                return Some((m.bit_offset + inner, ty));
            }
        }
        None
    }

    /// Type id of the function `name`.
    pub fn func_id(&self, name: &str) -> Result<u32, BtfError> {
        self.types
            .iter()
            .position(|ty| matches!(ty, Type::Func { name: n } if self.name(*n) == name))
            .map(|id| id as u32)
            .ok_or_else(|| BtfError::NoFunc {
                name: name.to_string(),
            })
    }

    /// Byte offset of `path` (members of nested structs, outermost first: `["f_path",
    /// "dentry"]`) inside struct `name`.
    pub fn offset(&self, name: &str, path: &[&str]) -> Result<u32, BtfError> {
        let mut id = *self.by_name.get(name).ok_or_else(|| BtfError::NoStruct {
            name: name.to_string(),
        })?;
        let mut bits = 0;
        let mut ty_name = name.to_string();
        for member in path {
            let (offset, ty) = self.find(id, member).ok_or_else(|| BtfError::NoMember {
                ty: ty_name.clone(),
                member: (*member).to_string(),
            })?;
            bits += offset;
            id = ty;
            ty_name = self
                .composite(ty)
                .map_or_else(|| (*member).to_string(), |(n, _)| n.to_string());
        }
        if bits % 8 != 0 {
            return Err(BtfError::Malformed {
                reason: format!("{name}.{} is a bitfield", path.join(".")),
            });
        }
        Ok(bits / 8)
    }
}

/// A BTF blob whose only named type is the function `func`, at type id `id` — where the
/// kernel's BTF has it, so that a program attached to it by id attaches to the kernel's. Every
/// type before it is a pointer to `void` (12 bytes each, no strings).
pub fn stand_in(func: &str, id: u32) -> Vec<u8> {
    let mut strings = vec![0u8];
    strings.extend_from_slice(func.as_bytes());
    strings.push(0);
    let fillers = id.saturating_sub(1) as usize;
    let mut types = Vec::with_capacity((fillers + 1) * 12);
    for _ in 0..fillers {
        for word in [0, KIND_PTR << 24, 0] {
            types.extend_from_slice(&word.to_le_bytes());
        }
    }
    // Global linkage (1) in vlen; its prototype would be the first type (not read by the
    // loader, which looks functions up by name and kind).
    for word in [1, KIND_FUNC << 24 | 1, 1] {
        types.extend_from_slice(&word.to_le_bytes());
    }
    blob_of(&types, &strings)
}

/// A BTF blob: the header, then the type section `types`, then the string section `strings`.
fn blob_of(types: &[u8], strings: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(24 + types.len() + strings.len());
    data.extend_from_slice(&MAGIC.to_le_bytes());
    data.extend_from_slice(&[1, 0]); // version 1, no flags
    for word in [24, 0, types.len(), types.len(), strings.len()] {
        data.extend_from_slice(&(word as u32).to_le_bytes());
    }
    data.extend_from_slice(types);
    data.extend_from_slice(strings);
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-built BTF blob: `struct inner { int a; long b; }`, `struct outer { int x;
    /// union { int y; struct inner in; }; }` with the union anonymous.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0long\0inner\0a\0b\0outer\0x\0y\0in\0";
        let s = |name: &str| -> u32 {
            let needle = format!("\0{name}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut types: Vec<u32> = Vec::new();
        // 1: int
        types.extend([s("int"), KIND_INT << 24, 4, 32]);
        // 2: long
        types.extend([s("long"), KIND_INT << 24, 8, 64]);
        // 3: struct inner { int a @0; long b @64 }
        types.extend([s("inner"), KIND_STRUCT << 24 | 2, 16]);
        types.extend([s("a"), 1, 0, s("b"), 2, 64]);
        // 4: anonymous union { int y @0; struct inner in @0 }
        types.extend([0, KIND_UNION << 24 | 2, 16]);
        types.extend([s("y"), 1, 0, s("in"), 3, 0]);
        // 5: typedef of the union (to check look-through)
        types.extend([0, KIND_TYPEDEF << 24, 4]);
        // 6: struct outer { int x @0; <anon> @64 }
        types.extend([s("outer"), KIND_STRUCT << 24 | 2, 24]);
        types.extend([s("x"), 1, 0, 0, 5, 64]);
        let type_bytes: Vec<u8> = types.iter().flat_map(|v| v.to_le_bytes()).collect();
        blob_of(&type_bytes, strings)
    }

    #[test]
    fn offsets_through_anonymous_members_and_typedefs() {
        let btf = Btf::parse(&blob()).unwrap();
        assert_eq!(btf.offset("inner", &["b"]).unwrap(), 8);
        assert_eq!(btf.offset("outer", &["x"]).unwrap(), 0);
        assert_eq!(btf.offset("outer", &["y"]).unwrap(), 8);
        assert_eq!(btf.offset("outer", &["in", "b"]).unwrap(), 16);
        assert!(matches!(
            btf.offset("outer", &["zz"]),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.offset("nothere", &["x"]),
            Err(BtfError::NoStruct { .. })
        ));
        assert!(Btf::parse(b"not btf at all, not at all").is_err());
    }

    /// The stand-in holds the function at the id asked for, as this reader and aya's see it.
    #[test]
    fn a_stand_in_has_the_function_at_the_kernels_id() {
        for id in [1, 2, 63_635] {
            let blob = stand_in("bpf_iter_task_file", id);
            assert_eq!(
                Btf::parse(&blob)
                    .unwrap()
                    .func_id("bpf_iter_task_file")
                    .unwrap(),
                id
            );
            let aya = aya::Btf::parse(&blob, aya::Endianness::Little).unwrap();
            assert_eq!(
                aya.id_by_type_name_kind("bpf_iter_task_file", aya_obj::btf::BtfKind::Func)
                    .unwrap(),
                id
            );
        }
        assert!(matches!(
            Btf::parse(&stand_in("f", 3)).unwrap().func_id("g"),
            Err(BtfError::NoFunc { .. })
        ));
    }

    /// This reader finds the iterator's function where aya's full parse of the kernel's BTF
    /// does: the id the stand-in is built with.
    #[test]
    fn the_iterator_function_has_the_id_aya_finds_in_the_kernel() {
        let (Ok(btf), Ok(full)) = (Btf::kernel(), aya::Btf::from_sys_fs()) else {
            println!("skipped: no /sys/kernel/btf/vmlinux");
            return;
        };
        let name = "bpf_iter_task_file";
        assert_eq!(
            btf.func_id(name).unwrap(),
            full.id_by_type_name_kind(name, aya_obj::btf::BtfKind::Func)
                .unwrap()
        );
    }

    #[test]
    fn the_running_kernel_has_the_members_the_programs_walk() {
        let Ok(btf) = Btf::kernel() else {
            println!("skipped: no /sys/kernel/btf/vmlinux");
            return;
        };
        for (ty, path) in [
            ("task_struct", &["files"][..]),
            ("files_struct", &["fdt"]),
            ("fdtable", &["fd"]),
            ("fdtable", &["max_fds"]),
            ("file", &["f_path", "dentry"]),
            ("file", &["f_mode"]),
            ("file", &["f_inode"]),
            ("dentry", &["d_parent"]),
            ("dentry", &["d_inode"]),
            ("dentry", &["d_name", "name"]),
            ("inode", &["i_ino"]),
            ("inode", &["i_sb"]),
            ("super_block", &["s_dev"]),
        ] {
            let offset = btf.offset(ty, path);
            assert!(offset.is_ok(), "{ty}.{}: {offset:?}", path.join("."));
        }
        // A member at a known place: `fdtable.max_fds` is its first member.
        assert_eq!(btf.offset("fdtable", &["max_fds"]).unwrap(), 0);
    }
}
