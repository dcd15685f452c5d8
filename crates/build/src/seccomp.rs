//! The system-call filter CppNix installs in the sandbox (`filter-syscalls`,
//! on by default): builders may not create setuid/setgid files (`chmod`
//! family with S_ISUID or S_ISGID fails with EPERM) nor extended attributes
//! (the `setxattr` family fails with ENOTSUP; a NAR cannot hold them). Written
//! as a small classic-BPF program rather than through libseccomp, so nothing
//! needs to be linked; the 32-bit x86 and x32 system-call tables are covered
//! too, as CppNix does, so a 32-bit builder cannot get around it.

/// `struct sock_filter`.
pub(crate) type Instruction = libc::sock_filter;

const LOAD_WORD_ABSOLUTE: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JUMP_IF_EQUAL: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JUMP_IF_BITS_SET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RETURN: u16 = 0x06; // BPF_RET | BPF_K

// Offsets in `struct seccomp_data`.
const SYSCALL_NUMBER: u32 = 0;
const ARCHITECTURE: u32 = 4;
fn argument_low_word(index: u32) -> u32 {
    16 + 8 * index
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
/// x32 system calls share AUDIT_ARCH_X86_64 and have this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
const fn fail_with(errno: i32) -> u32 {
    0x0005_0000 | (errno as u32 & 0xffff) // SECCOMP_RET_ERRNO
}

/// S_ISUID | S_ISGID.
const SETUID_OR_SETGID: u32 = 0o6000;

/// The system calls of one architecture the filter looks at.
struct Table {
    architecture: u32,
    /// (number, index of the mode argument).
    chmods: &'static [(u32, u32)],
    setxattrs: &'static [u32],
    /// Also match the numbers with the x32 bit set.
    x32: bool,
}

const TABLES: &[Table] = &[
    Table {
        architecture: AUDIT_ARCH_X86_64,
        // chmod, fchmod, fchmodat, fchmodat2
        chmods: &[(90, 1), (91, 1), (268, 2), (452, 2)],
        // setxattr, lsetxattr, fsetxattr
        setxattrs: &[188, 189, 190],
        x32: true,
    },
    Table {
        architecture: AUDIT_ARCH_I386,
        chmods: &[(15, 1), (94, 1), (306, 2), (452, 2)],
        setxattrs: &[226, 227, 228],
        x32: false,
    },
    // fchmod, fchmodat, fchmodat2 (there is no chmod)
    Table {
        architecture: AUDIT_ARCH_AARCH64,
        chmods: &[(52, 1), (53, 2), (452, 2)],
        setxattrs: &[5, 6, 7],
        x32: false,
    },
];

fn statement(code: u16, k: u32) -> Instruction {
    Instruction { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jump_if_true: u8, jump_if_false: u8) -> Instruction {
    Instruction { code, jt: jump_if_true, jf: jump_if_false, k }
}

/// The instructions for one architecture, entered with nothing loaded; every
/// path through them returns.
fn section(table: &Table) -> Vec<Instruction> {
    let mut code = vec![statement(LOAD_WORD_ABSOLUTE, SYSCALL_NUMBER)];
    let variants =
        |number: u32| -> Vec<u32> { if table.x32 { vec![number, number | X32_SYSCALL_BIT] } else { vec![number] } };
    for &(number, mode_argument) in table.chmods {
        for number in variants(number) {
            // Not this call: skip the four instructions of the check.
            code.push(jump(JUMP_IF_EQUAL, number, 0, 4));
            code.push(statement(LOAD_WORD_ABSOLUTE, argument_low_word(mode_argument)));
            code.push(jump(JUMP_IF_BITS_SET, SETUID_OR_SETGID, 0, 1));
            code.push(statement(RETURN, fail_with(libc::EPERM)));
            code.push(statement(RETURN, ALLOW));
        }
    }
    for &number in table.setxattrs {
        for number in variants(number) {
            code.push(jump(JUMP_IF_EQUAL, number, 0, 1));
            code.push(statement(RETURN, fail_with(libc::ENOTSUP)));
        }
    }
    code.push(statement(RETURN, ALLOW));
    code
}

/// The whole filter: dispatch on the architecture, then that architecture's
/// checks; calls of other architectures are allowed.
pub(crate) fn filter() -> Vec<Instruction> {
    let mut program = vec![statement(LOAD_WORD_ABSOLUTE, ARCHITECTURE)];
    for table in TABLES {
        let section = section(table);
        let length = u8::try_from(section.len()).expect("a filter section fits a BPF jump");
        program.push(jump(JUMP_IF_EQUAL, table.architecture, 0, length));
        program.extend(section);
    }
    program.push(statement(RETURN, ALLOW));
    program
}
