//! Instruction-set levels: the widest this CPU runs, the `models.simd` cap, and the
//! `per_isa!` dispatcher that compiles a portable loop once per level.

/// The widest kernels this CPU runs. Ordered: a level implies the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust; the compiler's baseline vectorisation.
    Portable,
    /// AVX2 and FMA (Haswell and later).
    Avx2,
    /// AVX-512 F/BW/VL with VNNI's `vpdpbusd` (Ice Lake, Cascade Lake and later,
    /// Zen 4). Skylake-X has AVX-512 without VNNI and runs the AVX2 kernels.
    Avx512Vnni,
}

impl Isa {
    /// The widest level this CPU runs.
    pub fn detected() -> Isa {
        static CPU: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CPU.get_or_init(Isa::of_this_cpu)
    }

    /// `models.simd`: None (auto) is the CPU's widest; a cap lowers it (to compare
    /// kernels on one machine, or on CPUs that lower their clock under AVX-512).
    pub fn chosen(cap: Option<Isa>) -> Isa {
        cap.map_or(Isa::detected(), |cap| cap.min(Isa::detected()))
    }

    fn of_this_cpu() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni") {
                return Isa::Avx512Vnni;
            }
            if has!("avx2") && has!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// The `models.simd` values other than `auto`.
    pub const SETTING_VALUES: [&str; 3] = ["avx512", "avx2", "portable"];

    pub fn parse(name: &str) -> Option<Isa> {
        match name {
            "portable" => Some(Isa::Portable),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512Vnni),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Every level this CPU can run, for tests that exercise each kernel.
    pub fn available() -> impl Iterator<Item = Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni]
            .into_iter()
            .filter(|isa| *isa <= Isa::detected())
    }
}

pub fn avx2_fma() -> bool {
    Isa::detected() >= Isa::Avx2
}

/// Compiles the portable loop `$body` once per instruction-set level and dispatches on
/// the level at run time (used where a kernel's element-wise loop lives).
macro_rules! per_isa {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $body:path;)*) => {$(
        /// Runs the portable loop compiled for `isa` (at most the CPU's level).
        pub fn $name(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
            match isa.min(Isa::detected()) {
                // SAFETY (both arms): the CPU has the features (detected).
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512Vnni => unsafe { wide::$name($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { narrow::$name($($arg),*) },
                _ => $body($($arg),*),
            }
        }
    )*
        #[cfg(target_arch = "x86_64")]
        mod wide {
            $(
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? { $body($($arg),*) }
            )*
        }
        #[cfg(target_arch = "x86_64")]
        mod narrow {
            $(
                #[target_feature(enable = "avx2,fma")]
                pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? { $body($($arg),*) }
            )*
        }
    };
}
pub(crate) use per_isa;
