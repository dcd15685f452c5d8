//! The message of a JSON syntax error as CppNix reports it for `fromJSON`:
//! the text of the nlohmann::json parse error its SAX parser raises
//! (`[json.exception.parse_error.101] parse error at line L, column C:
//! syntax error while parsing CONTEXT - …`).
//!
//! Used only once our own (faster) parser has found the input invalid: this
//! module re-reads the input the way that library's lexer and parser do, to
//! get the same position (columns count the byte that stopped the lexer, end
//! of input included), the same "last read" text (everything the lexer read
//! since the last string or number began, control characters shown as
//! `<U+XXXX>`) and the same expectations.

const EOF: i32 = -1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    Uninitialized,
    True,
    False,
    Null,
    String,
    Number,
    BeginArray,
    BeginObject,
    EndArray,
    EndObject,
    NameSeparator,
    ValueSeparator,
    ParseError,
    EndOfInput,
    LiteralOrValue,
}

fn token_name(token: Token) -> &'static str {
    match token {
        Token::Uninitialized => "<uninitialized>",
        Token::True => "true literal",
        Token::False => "false literal",
        Token::Null => "null literal",
        Token::String => "string literal",
        Token::Number => "number literal",
        Token::BeginArray => "'['",
        Token::BeginObject => "'{'",
        Token::EndArray => "']'",
        Token::EndObject => "'}'",
        Token::NameSeparator => "':'",
        Token::ValueSeparator => "','",
        Token::ParseError => "<parse error>",
        Token::EndOfInput => "end of input",
        Token::LiteralOrValue => "'[', '{', or a literal",
    }
}

const CONTROL_NAMES: [&str; 32] = [
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR", "SO", "SI", "DLE", "DC1",
    "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
];

struct Lexer<'a> {
    input: &'a [u8],
    next: usize,
    current: i32,
    next_unget: bool,
    chars_read_total: usize,
    chars_read_current_line: usize,
    lines_read: usize,
    /// What was read since the current string or number began.
    token_string: Vec<u8>,
    error_message: String,
}

impl Lexer<'_> {
    fn get(&mut self) -> i32 {
        self.chars_read_total += 1;
        self.chars_read_current_line += 1;
        if self.next_unget {
            self.next_unget = false;
        } else {
            self.current = match self.input.get(self.next) {
                Some(&b) => {
                    self.next += 1;
                    b as i32
                }
                None => EOF,
            };
        }
        if self.current != EOF {
            self.token_string.push(self.current as u8);
        }
        if self.current == b'\n' as i32 {
            self.lines_read += 1;
            self.chars_read_current_line = 0;
        }
        self.current
    }

    fn unget(&mut self) {
        self.next_unget = true;
        self.chars_read_total -= 1;
        if self.chars_read_current_line == 0 {
            self.lines_read = self.lines_read.saturating_sub(1);
        } else {
            self.chars_read_current_line -= 1;
        }
        if self.current != EOF {
            self.token_string.pop();
        }
    }

    fn reset(&mut self) {
        self.token_string.clear();
        if self.current != EOF {
            self.token_string.push(self.current as u8);
        }
    }

    fn fail(&mut self, message: impl Into<String>) -> Token {
        self.error_message = message.into();
        Token::ParseError
    }

    fn scan(&mut self) -> Token {
        if self.chars_read_total == 0 && !self.skip_bom() {
            return self.fail("invalid BOM; must be 0xEF 0xBB 0xBF if given");
        }
        loop {
            self.get();
            if !matches!(self.current, 0x20 | 0x09 | 0x0A | 0x0D) {
                break;
            }
        }
        match self.current {
            0x5B => Token::BeginArray,
            0x5D => Token::EndArray,
            0x7B => Token::BeginObject,
            0x7D => Token::EndObject,
            0x3A => Token::NameSeparator,
            0x2C => Token::ValueSeparator,
            0x74 => self.scan_literal(b"true", Token::True),
            0x66 => self.scan_literal(b"false", Token::False),
            0x6E => self.scan_literal(b"null", Token::Null),
            0x22 => self.scan_string(),
            0x2D | 0x30..=0x39 => self.scan_number(),
            0 | EOF => Token::EndOfInput,
            _ => self.fail("invalid literal"),
        }
    }

    fn skip_bom(&mut self) -> bool {
        if self.get() == 0xEF {
            return self.get() == 0xBB && self.get() == 0xBF;
        }
        self.unget();
        true
    }

    fn scan_literal(&mut self, text: &[u8], token: Token) -> Token {
        for &expected in &text[1..] {
            if self.get() != expected as i32 {
                return self.fail("invalid literal");
            }
        }
        token
    }

    /// Four hex digits after `\u`, or none (the byte that is not one is read).
    fn codepoint(&mut self) -> Option<u32> {
        let mut value = 0;
        for _ in 0..4 {
            let c = self.get();
            let digit = u8::try_from(c).ok().and_then(|b| (b as char).to_digit(16))?;
            value = value * 16 + digit;
        }
        Some(value)
    }

    /// The continuation bytes of a UTF-8 sequence, each within its range.
    fn utf8_continuation(&mut self, ranges: &[(i32, i32)]) -> bool {
        for &(low, high) in ranges {
            let c = self.get();
            if !(low..=high).contains(&c) {
                self.error_message = "invalid string: ill-formed UTF-8 byte".into();
                return false;
            }
        }
        true
    }

    fn scan_string(&mut self) -> Token {
        self.reset();
        loop {
            match self.get() {
                EOF => return self.fail("invalid string: missing closing quote"),
                0x22 => return Token::String,
                0x5C => match self.get() {
                    0x22 | 0x5C | 0x2F | 0x62 | 0x66 | 0x6E | 0x72 | 0x74 => {}
                    0x75 => {
                        const NOT_HEX: &str = "invalid string: '\\u' must be followed by 4 hex digits";
                        let Some(first) = self.codepoint() else { return self.fail(NOT_HEX) };
                        if (0xD800..=0xDBFF).contains(&first) {
                            const UNPAIRED: &str = "invalid string: surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF";
                            if self.get() != 0x5C || self.get() != 0x75 {
                                return self.fail(UNPAIRED);
                            }
                            let Some(second) = self.codepoint() else { return self.fail(NOT_HEX) };
                            if !(0xDC00..=0xDFFF).contains(&second) {
                                return self.fail(UNPAIRED);
                            }
                        } else if (0xDC00..=0xDFFF).contains(&first) {
                            return self.fail("invalid string: surrogate U+DC00..U+DFFF must follow U+D800..U+DBFF");
                        }
                    }
                    _ => return self.fail("invalid string: forbidden character after backslash"),
                },
                c @ 0x00..=0x1F => {
                    let alternative = match c {
                        0x08 => " or \\b",
                        0x09 => " or \\t",
                        0x0A => " or \\n",
                        0x0C => " or \\f",
                        0x0D => " or \\r",
                        _ => "",
                    };
                    let message = format!(
                        "invalid string: control character U+{c:04X} ({}) must be escaped to \\u{c:04X}{alternative}",
                        CONTROL_NAMES[c as usize]
                    );
                    return self.fail(message);
                }
                0x20..=0x7F => {}
                0xC2..=0xDF => {
                    if !self.utf8_continuation(&[(0x80, 0xBF)]) {
                        return Token::ParseError;
                    }
                }
                0xE0 => {
                    if !self.utf8_continuation(&[(0xA0, 0xBF), (0x80, 0xBF)]) {
                        return Token::ParseError;
                    }
                }
                0xE1..=0xEC | 0xEE | 0xEF => {
                    if !self.utf8_continuation(&[(0x80, 0xBF), (0x80, 0xBF)]) {
                        return Token::ParseError;
                    }
                }
                0xED => {
                    if !self.utf8_continuation(&[(0x80, 0x9F), (0x80, 0xBF)]) {
                        return Token::ParseError;
                    }
                }
                0xF0 => {
                    if !self.utf8_continuation(&[(0x90, 0xBF), (0x80, 0xBF), (0x80, 0xBF)]) {
                        return Token::ParseError;
                    }
                }
                0xF1..=0xF3 => {
                    if !self.utf8_continuation(&[(0x80, 0xBF), (0x80, 0xBF), (0x80, 0xBF)]) {
                        return Token::ParseError;
                    }
                }
                0xF4 => {
                    if !self.utf8_continuation(&[(0x80, 0x8F), (0x80, 0xBF), (0x80, 0xBF)]) {
                        return Token::ParseError;
                    }
                }
                _ => return self.fail("invalid string: ill-formed UTF-8 byte"),
            }
        }
    }

    fn scan_number(&mut self) -> Token {
        self.reset();
        let is_digit = |c: i32| (0x30..=0x39).contains(&c);
        // The states of the library's number scanner.
        #[derive(Clone, Copy)]
        enum State {
            Minus,
            Zero,
            Any1,
            Decimal1,
            Decimal2,
            Exponent,
            Sign,
            Any2,
        }
        let mut state = match self.current {
            0x2D => State::Minus,
            0x30 => State::Zero,
            _ => State::Any1,
        };
        loop {
            let c = self.get();
            state = match state {
                State::Minus if c == 0x30 => State::Zero,
                State::Minus if is_digit(c) => State::Any1,
                State::Minus => return self.fail("invalid number; expected digit after '-'"),
                State::Zero | State::Any1 if c == 0x2E => State::Decimal1,
                State::Zero | State::Any1 | State::Decimal2 if c == 0x65 || c == 0x45 => State::Exponent,
                State::Any1 if is_digit(c) => State::Any1,
                State::Decimal1 if is_digit(c) => State::Decimal2,
                State::Decimal1 => return self.fail("invalid number; expected digit after '.'"),
                State::Decimal2 if is_digit(c) => State::Decimal2,
                State::Exponent if c == 0x2B || c == 0x2D => State::Sign,
                State::Exponent if is_digit(c) => State::Any2,
                State::Exponent => return self.fail("invalid number; expected '+', '-', or digit after exponent"),
                State::Sign if is_digit(c) => State::Any2,
                State::Sign => return self.fail("invalid number; expected digit after exponent sign"),
                State::Any2 if is_digit(c) => State::Any2,
                State::Zero | State::Any1 | State::Decimal2 | State::Any2 => {
                    self.unget();
                    return Token::Number;
                }
            };
        }
    }

    /// What was read, control characters shown as `<U+XXXX>`.
    fn token_string(&self) -> String {
        let mut out = Vec::new();
        for &b in &self.token_string {
            if b <= 0x1F {
                out.extend_from_slice(format!("<U+{b:04X}>").as_bytes());
            } else {
                out.push(b);
            }
        }
        // (A message is text: a byte that is no UTF-8 shows as U+FFFD.)
        String::from_utf8_lossy(&out).into_owned()
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    last_token: Token,
}

impl Parser<'_> {
    fn get_token(&mut self) -> Token {
        self.last_token = self.lexer.scan();
        self.last_token
    }

    fn error(&self, expected: Token, context: &str) -> String {
        let mut message = format!(
            "[json.exception.parse_error.101] parse error at line {}, column {}: syntax error while parsing {context} - ",
            self.lexer.lines_read + 1,
            self.lexer.chars_read_current_line
        );
        if self.last_token == Token::ParseError {
            message.push_str(&format!("{}; last read: '{}'", self.lexer.error_message, self.lexer.token_string()));
        } else {
            message.push_str(&format!("unexpected {}", token_name(self.last_token)));
        }
        if expected != Token::Uninitialized {
            message.push_str(&format!("; expected {}", token_name(expected)));
        }
        message
    }

    /// The library's iterative parser: `Err` with the message of the first error.
    fn parse(&mut self) -> Result<(), String> {
        // Open containers: true for an array, false for an object.
        let mut states: Vec<bool> = Vec::new();
        let mut after_value = false;
        self.get_token();
        loop {
            if !after_value {
                match self.last_token {
                    Token::BeginObject => {
                        if self.get_token() != Token::EndObject {
                            if self.last_token != Token::String {
                                return Err(self.error(Token::String, "object key"));
                            }
                            if self.get_token() != Token::NameSeparator {
                                return Err(self.error(Token::NameSeparator, "object separator"));
                            }
                            states.push(false);
                            self.get_token();
                            continue;
                        }
                    }
                    Token::BeginArray => {
                        if self.get_token() != Token::EndArray {
                            states.push(true);
                            continue;
                        }
                    }
                    Token::True | Token::False | Token::Null | Token::String | Token::Number => {}
                    Token::ParseError => return Err(self.error(Token::Uninitialized, "value")),
                    _ => return Err(self.error(Token::LiteralOrValue, "value")),
                }
            }
            after_value = false;
            let Some(&in_array) = states.last() else { break };
            if in_array {
                if self.get_token() == Token::ValueSeparator {
                    self.get_token();
                    continue;
                }
                if self.last_token == Token::EndArray {
                    states.pop();
                    after_value = true;
                    continue;
                }
                return Err(self.error(Token::EndArray, "array"));
            }
            if self.get_token() == Token::ValueSeparator {
                if self.get_token() != Token::String {
                    return Err(self.error(Token::String, "object key"));
                }
                if self.get_token() != Token::NameSeparator {
                    return Err(self.error(Token::NameSeparator, "object separator"));
                }
                self.get_token();
                continue;
            }
            if self.last_token == Token::EndObject {
                states.pop();
                after_value = true;
                continue;
            }
            return Err(self.error(Token::EndObject, "object"));
        }
        if self.get_token() != Token::EndOfInput {
            return Err(self.error(Token::EndOfInput, "value"));
        }
        Ok(())
    }
}

/// The library's message for the first syntax error in `input`, or `None`
/// when it would accept the input (the failure is then one of CppNix's own,
/// such as a null byte in a string).
pub fn syntax_error(input: &[u8]) -> Option<String> {
    let lexer = Lexer {
        input,
        next: 0,
        current: EOF,
        next_unget: false,
        chars_read_total: 0,
        chars_read_current_line: 0,
        lines_read: 0,
        token_string: Vec::new(),
        error_message: String::new(),
    };
    Parser { lexer, last_token: Token::Uninitialized }.parse().err()
}
