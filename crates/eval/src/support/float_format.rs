//! How CppNix turns floats into text, in its three different ways.
//!
//! - Printing a value (`nix-instantiate --eval`, `nix eval`, error messages):
//!   C++ `std::ostream << double` with the default precision 6, i.e. C's
//!   `%g`: at most six significant digits, trailing zeros removed, exponent
//!   form (`1e+06`, `1e-05`) below 1e-4 or from 1e6 on. `inf`, `-inf`,
//!   `nan`, `-0`.
//! - `builtins.toString` and string interpolation: `std::to_string(double)`,
//!   i.e. C's `%f`: always six decimals (`"1.500000"`), every integer digit
//!   (`1e21` becomes `"1000000000000000000000.000000"`).
//! - `builtins.toJSON` (CppNix after 2.8, through nlohmann::json): the
//!   shortest decimal that reads back as the same double, `.0` appended to
//!   integral values, exponent form `1e+16`/`1e-05` when the decimal point
//!   would fall outside [-4, 15] digits; non-finite values become `null`.
//!   (CppNix 2.8 itself used the `%g` form here; see tests/lang/POST-2.8.md.)
//!
//! Rust's float formatting is exact (correct rounding of the binary value),
//! like glibc's `printf`, so the digit strings agree.

/// `%g` with precision 6: how CppNix prints a float value.
pub fn format_float_for_print(value: f64) -> String {
    if let Some(special) = non_finite(value) {
        return special.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    const PRECISION: i32 = 6;
    // The exponent %e would show after rounding to PRECISION digits.
    let scientific = format!("{:.*e}", (PRECISION - 1) as usize, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..PRECISION).contains(&exponent) {
        let decimals = (PRECISION - 1 - exponent) as usize;
        strip_trailing_zeros(&format!("{value:.decimals$}")).to_string()
    } else {
        let mantissa = strip_trailing_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    }
}

/// `%f`: how `builtins.toString` and interpolation render a float.
pub fn format_float_for_to_string(value: f64) -> String {
    if let Some(special) = non_finite(value) {
        return special.to_string();
    }
    format!("{value:.6}")
}

/// nlohmann::json's number format: how current CppNix's `builtins.toJSON`
/// writes a float.
pub fn format_float_for_json(value: f64) -> String {
    if !value.is_finite() {
        return "null".into();
    }
    let mut out = String::new();
    if value.is_sign_negative() {
        out.push('-');
    }
    let value = value.abs();
    if value == 0.0 {
        out.push_str("0.0");
        return out;
    }
    // Shortest round-trip digits and decimal exponent: value = 0.DIGITS * 10^point.
    let shortest = format!("{value:e}");
    let (mantissa, exponent) = shortest.split_once('e').unwrap_or((&shortest, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exponent + 1; // position of the decimal point after the first digit
    const MIN_EXP: i32 = -4;
    const MAX_EXP: i32 = 15;
    if k <= n && n <= MAX_EXP {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
        out.push_str(".0");
    } else if 0 < n && n <= MAX_EXP {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if MIN_EXP < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let shown = n - 1;
        out.push('e');
        out.push(if shown < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", shown.unsigned_abs()));
    }
    out
}

fn non_finite(value: f64) -> Option<&'static str> {
    if value.is_nan() {
        Some(if value.is_sign_negative() { "-nan" } else { "nan" })
    } else if value.is_infinite() {
        Some(if value > 0.0 { "inf" } else { "-inf" })
    } else {
        None
    }
}

fn strip_trailing_zeros(text: &str) -> &str {
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values and outputs recorded from CppNix 2.8: `[ fs (map toString fs) ]`
    /// (3.14159265 is a literal from that test, not an approximation of pi).
    #[allow(clippy::approx_constant)]
    const VALUES: &[f64] = &[
        0.0, 1.0, -1.0, 0.5, 0.1, 0.3, 1.5, 2.5, 100.0, 123456.0, 1234567.0, 999999.0, 999999.5, 9999995.0, 0.0001,
        0.00001, 0.000123456789, 0.00099999999, 1.0e10, 1.5e-5, 3.14159265, 2.5e300, 1.23456789, 1.0e21, 1.5e16,
        123456.5, 1234565.0, 1.0 / 3.0, 2.0 / 3.0, 1.0e-300, 1.7976931348623157e308, -0.0001, 12.0, 0.000001,
        1.0e100, 5.0e-5, 0.00005, -0.0, f64::INFINITY, f64::NEG_INFINITY, 0.5e-4, 99999.95, 999999.4999,
    ];

    #[test]
    fn printing_matches_cppnix() {
        let expected = "0 1 -1 0.5 0.1 0.3 1.5 2.5 100 123456 1.23457e+06 999999 1e+06 1e+07 0.0001 1e-05 \
            0.000123457 0.001 1e+10 1.5e-05 3.14159 2.5e+300 1.23457 1e+21 1.5e+16 123456 1.23456e+06 0.333333 \
            0.666667 1e-300 1.79769e+308 -0.0001 12 1e-06 1e+100 5e-05 5e-05 -0 inf -inf 5e-05 99999.9 999999";
        let actual: Vec<String> = VALUES.iter().map(|v| format_float_for_print(*v)).collect();
        assert_eq!(actual.join(" "), expected);
    }

    #[test]
    fn to_string_matches_cppnix() {
        let expected = [
            "0.000000", "1.000000", "-1.000000", "0.500000", "0.100000", "0.300000", "1.500000", "2.500000",
            "100.000000", "123456.000000", "1234567.000000", "999999.000000", "999999.500000", "9999995.000000",
            "0.000100", "0.000010", "0.000123", "0.001000", "10000000000.000000", "0.000015", "3.141593",
            "2500000000000000131261900638011050621761171452770397887289635288779506144972270489465928437701119660109261109582209695442356308088401076439111980461966767457120968002316439509344575584486970225148422383087426999862702797597419102200186631856950356236448146972050142107095289173680490967163648501350400.000000",
            "1.234568", "1000000000000000000000.000000", "15000000000000000.000000", "123456.500000",
            "1234565.000000", "0.333333", "0.666667", "0.000000",
            "179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878171540458953514382464234321326889464182768467546703537516986049910576551282076245490090389328944075868508455133942304583236903222948165808559332123348274797826204144723168738177180919299881250404026184124858368.000000",
            "-0.000100", "12.000000", "0.000001",
            "10000000000000000159028911097599180468360808563945281389781327557747838772170381060813469985856815104.000000",
            "0.000050", "0.000050", "-0.000000", "inf", "-inf", "0.000050", "99999.950000", "999999.499900",
        ];
        let actual: Vec<String> = VALUES.iter().map(|v| format_float_for_to_string(*v)).collect();
        assert_eq!(actual, expected);
    }

    /// Derived from nlohmann::json's documented number format (shortest
    /// round-trip, `.0` for integral values, exponent outside [1e-4, 1e15]).
    #[test]
    fn json_matches_nlohmann_format() {
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"), (1.0, "1.0"), (1.0e-7, "1e-07"), (123456789.123, "123456789.123"),
            (1.0 / 3.0, "0.3333333333333333"), (1.0e300, "1e+300"), (-0.0, "-0.0"), (0.0, "0.0"),
            (1.0e14, "100000000000000.0"), (1.0e15, "1e+15"), (0.0001, "0.0001"), (0.00001, "1e-05"), (2.5, "2.5"),
            (-3.75, "-3.75"), (1.5e300, "1.5e+300"), (1.2345e-10, "1.2345e-10"), (f64::NAN, "null"),
            (f64::INFINITY, "null"), (123.0, "123.0"), (0.001234, "0.001234"),
        ];
        for (value, expected) in cases {
            assert_eq!(format_float_for_json(*value), *expected, "{value:e}");
        }
    }

    /// With CppNix 2.8 at hand, check printing and toString on random floats.
    #[test]
    fn random_floats_agree_with_cppnix() {
        let nix_instantiate = std::path::Path::new("/usr/bin/nix-instantiate");
        if !nix_instantiate.exists() {
            eprintln!("skipped: /usr/bin/nix-instantiate not installed");
            return;
        }
        let mut state: u64 = 0x1234_5678;
        let mut values = Vec::new();
        for _ in 0..300 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let mantissa = (state >> 11) as f64 / (1u64 << 53) as f64 * 10.0;
            let exponent = ((state >> 3) % 40) as i32 - 20;
            // Keep to 17 significant digits so the literal is exactly this double.
            let value: f64 = format!("{:.16e}", mantissa * 10f64.powi(exponent)).parse().unwrap();
            if value >= 1e-300 {
                values.push(value);
            }
        }
        let literals: Vec<String> = values.iter().map(|v| format!("{v:.16e}")).collect();
        let expression = format!("let fs = [ {} ]; in [ fs (map toString fs) ]", literals.join(" "));
        let output = std::process::Command::new(nix_instantiate)
            .args(["--eval", "--strict", "-E", &expression])
            .output()
            .expect("running nix-instantiate");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let printed: Vec<String> = values.iter().map(|v| format_float_for_print(*v)).collect();
        let strings: Vec<String> = values.iter().map(|v| format!("\"{}\"", format_float_for_to_string(*v))).collect();
        let ours = format!("[ [ {} ] [ {} ] ]", printed.join(" "), strings.join(" "));
        assert_eq!(ours, String::from_utf8_lossy(&output.stdout).trim_end());
    }
}
