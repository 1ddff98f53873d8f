//! Label enums: their spellings come from `strum` derives (`IntoStaticStr`, `Display`,
//! `VariantArray`); this turns the derived variant list into the `ALL` array that code
//! iterating every label value (zero series, tests) uses by value.

use strum::VariantArray;

/// Every variant of `T`, in declaration order, as an array (checked at compile time).
pub const fn every<T: VariantArray + Copy, const N: usize>() -> [T; N] {
    assert!(T::VARIANTS.len() == N, "N is not the number of variants");
    let mut all = [T::VARIANTS[0]; N];
    let mut index = 1;
    while index < N {
        all[index] = T::VARIANTS[index];
        index += 1;
    }
    all
}
