// Single-pass CPU kernels for optproof.torch_impl's fused=True path.
//
// One generic driver (`run`) walks every element of a group of tensors once: it loads the
// parameter, the gradient and the rule's state tensors, widens them to opmath (float for
// float32 / bfloat16 / float16, double for float64), applies the common prologue
// (maximize, L2 or decoupled weight decay) and the rule's element update (`Rule::step`, one
// templated body per rule), and stores every output with one rounding.  Per-step scalars
// (bias corrections, clr, mu-products, ...) arrive as float64 rows computed on the host by
// optproof/torch_impl/fused/rules.py exactly as the for-loop path computes them, and are
// cast once to opmath here.  The math of each rule, with its sources, is in rules.py.
//
// The same call advances the per-tensor 0-d counters (state['step'], NAdam's
// state['mu_product']) the row's scalars were computed from: one call per step, no separate
// counter update and no scalar tensor to build (see `advance_counters`).
//
// Built by optproof/torch_impl/fused/cpu.py with torch.utils.cpp_extension.load (a
// persistent cache, about 15-60 s once per machine) as a Python module whose functions are
// bound with pybind11 through torch's tensor type casters: a call costs less than a
// registered torch op's boxed dispatch (about 25 against 75 µs on a cold cache, 1.4 against
// 4.6 µs warm).

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/csrc/utils/pybind.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace optproof_fused {

template <typename T> struct Opmath { using type = float; };
template <> struct Opmath<double> { using type = double; };

// The two operations of the rules that are not plain arithmetic, for a scalar T and for the
// float vector below: the square root, and torch.maximum (NaN propagates from either side).
template <typename T> static inline T root(T x) { return std::sqrt(x); }
template <typename T> static inline T nan_max(T a, T b) { return ((a > b) | (a != a)) ? a : b; }

// 16-bit memory, a vector at a time.  c10::Half converts one value per call (F16C's scalar
// _cvtsh_ss / _cvtss_sh), which the compiler does not vectorise (nor does gcc 12 vectorise a
// _Float16 conversion without AVX512-FP16): a float16 loop ran 6-7x slower than torch's fused
// kernels.  c10::BFloat16's integer rounding does vectorise, into about eight instructions per
// vector.  So 16-bit parameters are loaded and stored W lanes at a time with explicit
// conversions, and the rule runs on a float vector of gcc's vector extension: IEEE single
// operations lane by lane, no contraction (-ffp-contract=off), the same roundings as the
// scalar code.  Measured in bench/README.md; tests/test_fused.py checks that the vector lanes
// step bitwise like the scalar tail (c10's conversions) and round like Tensor.to.
//
// * float16 (F16C): vcvtph2ps widens exactly; vcvtps2ph rounds to nearest even with gradual
//   underflow and overflow to +-inf.  These are the instructions c10::Half's scalar
//   conversions use, so lanes and tail agree bit for bit.
// * bfloat16 (AVX-512): widening is a 16-bit shift.  Narrowing is vcvtneps2bf16 (AVX512-BF16:
//   round to nearest even, one instruction), which treats subnormal inputs as zero, so a
//   vector holding a float32 subnormal takes c10's integer rounding instead:
//   (u + 0x7fff + ((u >> 16) & 1)) >> 16, and 0x7fc0 for NaN.  Both give the same bits but
//   for NaN payloads (NaN stays NaN, as between torch's own scalar and vector conversions).
#if defined(__AVX512F__) && defined(__F16C__)
#define OPTPROOF_WIDE 16
typedef float WideFloat __attribute__((vector_size(64)));
template <> inline WideFloat root(WideFloat x) { return WideFloat(_mm512_sqrt_ps(__m512(x))); }
static inline WideFloat wide_load(const at::Half* p) {
  return WideFloat(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
}
static inline void wide_store(at::Half* p, WideFloat x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm512_cvtps_ph(__m512(x), _MM_FROUND_TO_NEAREST_INT));
}
static inline WideFloat wide_load(const at::BFloat16* p) {
  const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return WideFloat(_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16)));
}
static inline void bfloat16_store_rounding_bits(at::BFloat16* p, WideFloat x) {
  const __m512i u = _mm512_castps_si512(__m512(x));
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(__m512(x), __m512(x), _CMP_UNORD_Q),
                            _mm512_set1_epi32(0x7fc0));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
}
static inline void wide_store(at::BFloat16* p, WideFloat x) {
#ifdef __AVX512BF16__
  const __m512i u = _mm512_castps_si512(__m512(x));
  const __mmask16 subnormal = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000)) &
                              _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x007fffff));
  if (__builtin_expect(subnormal == 0, 1)) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), __m256i(_mm512_cvtneps_pbh(__m512(x))));
    return;
  }
#endif
  bfloat16_store_rounding_bits(p, x);
}
#elif defined(__AVX__) && defined(__F16C__)
#define OPTPROOF_WIDE 8  // float16 only: bfloat16 keeps c10's vectorised scalar conversions
typedef float WideFloat __attribute__((vector_size(32)));
template <> inline WideFloat root(WideFloat x) { return WideFloat(_mm256_sqrt_ps(__m256(x))); }
static inline WideFloat wide_load(const at::Half* p) {
  return WideFloat(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}
static inline void wide_store(at::Half* p, WideFloat x) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(__m256(x), _MM_FROUND_TO_NEAREST_INT));
}
#endif
#ifdef OPTPROOF_WIDE
static inline WideFloat wide_load(const float* p) {  // float32 state beside 16-bit parameters
  WideFloat x;
  std::memcpy(&x, p, sizeof x);
  return x;
}
static inline void wide_store(float* p, WideFloat x) { std::memcpy(p, &x, sizeof x); }
#endif
// Parameter dtypes whose loop runs on WideFloat
template <typename P> constexpr bool kWide = false;
#ifdef OPTPROOF_WIDE
template <> constexpr bool kWide<at::Half> = true;
#if OPTPROOF_WIDE == 16
template <> constexpr bool kWide<at::BFloat16> = true;
#endif
#endif
// which of the paths above this build took (the module's `vector_path`, for the tests)
constexpr const char* kVectorPath =
#if OPTPROOF_WIDE == 16 && defined(__AVX512BF16__)
    "avx512-bf16";
#elif OPTPROOF_WIDE == 16
    "avx512";
#elif OPTPROOF_WIDE == 8
    "avx2";
#else
    "none";
#endif

enum Flag : int64_t { MAXIMIZE = 1, L2 = 2 };
// scalar row layout (rules.py, RULE_SLOTS): [l2_weight_decay, decoupled_decay_factor, rule
// scalars (at most 8)..., the counters the row expects before and after the step, first step]
constexpr int kMaxScalars = 16;
enum Slot : int {
  WD = 0, DECAY = 1, R = 2, T_OLD = 10, T_NEW = 11, PI_OLD = 12, PI_NEW = 13, MU = 14,
  FIRST_SLOT = kMaxScalars - 1
};

// ---------------------------------------------------------------- rules (see rules.py)

// kNarrow: the element loop prefers 256-bit vectors (see run_range_256)
struct SGD {  // V: 0 plain, 1 momentum, 2 nesterov; c: mu, 1 - dampening, -lr
  static constexpr bool kNarrow = true;
  static constexpr int states(int v) { return v == 0 ? 0 : 1; }
  template <int V, typename T>
  static inline void step(T& p, T g, T& b, T&, T&, const T* c, bool first) {
    T d = g;
    if constexpr (V > 0) {
      b = first ? g : b * c[R + 0] + c[R + 1] * g;
      d = V == 2 ? g + c[R + 0] * b : b;
    }
    p = p + c[R + 2] * d;
  }
};

struct Adagrad {  // c: -clr, eps
  static constexpr bool kNarrow = false;
  static constexpr int states(int) { return 1; }
  template <int V, typename T>
  static inline void step(T& p, T g, T& s, T&, T&, const T* c, bool) {
    s = s + g * g;
    T std_ = root(s) + c[R + 1];
    p = p + c[R + 0] * (g / std_);
  }
};

struct Adadelta {  // c: rho, 1 - rho, eps, -lr
  static constexpr bool kNarrow = false;
  static constexpr int states(int) { return 2; }
  template <int V, typename T>
  static inline void step(T& p, T g, T& sq, T& acc, T&, const T* c, bool) {
    sq = sq * c[R + 0] + c[R + 1] * g * g;
    T std_ = root(sq + c[R + 2]);
    T delta = root(acc + c[R + 2]) / std_ * g;
    acc = acc * c[R + 0] + c[R + 1] * delta * delta;
    p = p + c[R + 3] * delta;
  }
};

struct RMSprop {  // V: bit 1 momentum, bit 2 centered; c: alpha, 1 - alpha, eps, mu, -lr
  static constexpr bool kNarrow = false;
  static constexpr int states(int v) { return 1 + (v & 1) + ((v >> 1) & 1); }
  template <int V, typename T>
  static inline void step(T& p, T g, T& sq, T& s1, T& s2, const T* c, bool) {
    constexpr bool momentum = V & 1, centered = V & 2;
    sq = sq * c[R + 0] + c[R + 1] * g * g;
    T avg;
    if constexpr (centered) {
      T& ga = momentum ? s2 : s1;
      ga = ga * c[R + 0] + c[R + 1] * g;
      avg = root(sq - ga * ga);
    } else {
      avg = root(sq);
    }
    avg = avg + c[R + 2];
    if constexpr (momentum) {
      s1 = s1 * c[R + 3] + g / avg;
      p = p + c[R + 4] * s1;
    } else {
      p = p + c[R + 4] * (g / avg);
    }
  }
};

struct Adam {  // V: 1 amsgrad; c: beta1, 1 - beta1, beta2, 1 - beta2, -lr/bc1, 1/sqrt(bc2), eps
  static constexpr bool kNarrow = false;
  static constexpr int states(int v) { return 2 + v; }
  template <int V, typename T>
  static inline void step(T& p, T g, T& m, T& v, T& vmax, const T* c, bool) {
    m = m * c[R + 0] + c[R + 1] * g;
    v = v * c[R + 2] + c[R + 3] * g * g;
    T vhat = v;
    if constexpr (V == 1) {
      vmax = nan_max(v, vmax);
      vhat = vmax;
    }
    T denom = root(vhat) * c[R + 5] + c[R + 6];  // host scalar 1/sqrt(bc2): one division less
    p = p + c[R + 4] * (m / denom);
  }
};

struct NAdam {  // c: beta1, 1 - beta1, beta2, 1 - beta2, 1/bc2, eps, grad_step, avg_step
  static constexpr bool kNarrow = false;
  static constexpr int states(int) { return 2; }
  template <int V, typename T>
  static inline void step(T& p, T g, T& m, T& v, T&, const T* c, bool) {
    m = m * c[R + 0] + c[R + 1] * g;
    v = v * c[R + 2] + c[R + 3] * g * g;
    const T r = 1 / (root(v * c[R + 4]) + c[R + 5]);  // one division, not three
    p = p + c[R + 6] * (g * r);
    p = p + c[R + 7] * (m * r);
  }
};

// ---------------------------------------------------------------- the generic driver

struct Item;
using RangeFn = void (*)(const Item&, int64_t, int64_t, int64_t);

struct Item {  // one tensor: raw pointers, its scalar row, the instantiation for its dtypes
  void* p;
  const void* g;
  void* s[3];
  const double* c;
  int64_t n;
  RangeFn fn;
};

// One element (or one vector of elements): the common prologue (maximize, L2 or decoupled
// weight decay) and the rule.
template <class Rule, int V, typename T>
static inline __attribute__((always_inline)) void update(T& p, T g, T& a, T& bb, T& cc,
                                                         const T* c, bool maximize, bool l2,
                                                         bool first) {
  g = maximize ? -g : g;
  p = p * c[DECAY];  // (1 - lr*lambda), exactly 1 without decoupled decay
  g = l2 ? g + c[WD] * p : g;
  Rule::template step<V, T>(p, g, a, bb, cc, c, first);
}

template <class Rule, int V, typename P, typename S>
static inline __attribute__((always_inline)) void loop(const Item& it, int64_t b, int64_t e,
                                                       int64_t flags) {
  using T = typename Opmath<P>::type;
  constexpr int NS = Rule::states(V);
  T c[kMaxScalars];
  for (int k = 0; k < kMaxScalars; ++k) c[k] = static_cast<T>(it.c[k]);
  const bool maximize = flags & MAXIMIZE, l2 = flags & L2, first = it.c[FIRST_SLOT] != 0;
  P* __restrict__ pp = static_cast<P*>(it.p);
  const P* __restrict__ gp = static_cast<const P*>(it.g);
  S* __restrict__ s0 = static_cast<S*>(it.s[0]);
  S* __restrict__ s1 = static_cast<S*>(it.s[1]);
  S* __restrict__ s2 = static_cast<S*>(it.s[2]);
  int64_t i = b;
#ifdef OPTPROOF_WIDE
  if constexpr (kWide<P>) {  // 16-bit parameters: the vector loop, then the scalar tail
    constexpr int W = OPTPROOF_WIDE;
    WideFloat cw[kMaxScalars];
    for (int k = 0; k < kMaxScalars; ++k) cw[k] = WideFloat{} + c[k];
    for (; i + W <= e; i += W) {
      WideFloat p = wide_load(pp + i), a{}, bb{}, cc{};
      if constexpr (NS > 0) a = wide_load(s0 + i);
      if constexpr (NS > 1) bb = wide_load(s1 + i);
      if constexpr (NS > 2) cc = wide_load(s2 + i);
      update<Rule, V>(p, wide_load(gp + i), a, bb, cc, cw, maximize, l2, first);
      wide_store(pp + i, p);
      if constexpr (NS > 0) wide_store(s0 + i, a);
      if constexpr (NS > 1) wide_store(s1 + i, bb);
      if constexpr (NS > 2) wide_store(s2 + i, cc);
    }
  }
#endif
  for (; i < e; ++i) {
    T p = static_cast<T>(pp[i]);
    T a = 0, bb = 0, cc = 0;
    if constexpr (NS > 0) a = static_cast<T>(s0[i]);  // uninitialised on SGD's first step: unused
    if constexpr (NS > 1) bb = static_cast<T>(s1[i]);
    if constexpr (NS > 2) cc = static_cast<T>(s2[i]);
    update<Rule, V>(p, static_cast<T>(gp[i]), a, bb, cc, c, maximize, l2, first);
    pp[i] = static_cast<P>(p);
    if constexpr (NS > 0) s0[i] = static_cast<S>(a);
    if constexpr (NS > 1) s1[i] = static_cast<S>(bb);
    if constexpr (NS > 2) s2[i] = static_cast<S>(cc);
  }
}

// The loop at two vector widths (-march=native's 512 bits on an AVX-512 CPU, and 256).
// Measured on the 2-core AMD EPYC (Zen 4) machine, 1 x 10M, the same memory, interleaved
// (bench/README.md): SGD's multiply-add body streams 1.5-9 % faster with 256-bit vectors in
// float32 and float64 (torch's fused SGD runs its AVX2 kernel there), while every rule with a
// square root and a division, and every bfloat16 loop, is 2-30 % faster at 512 bits.
template <class Rule, int V, typename P, typename S>
static void run_range(const Item& it, int64_t b, int64_t e, int64_t flags) {
  loop<Rule, V, P, S>(it, b, e, flags);
}

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define OPTPROOF_NARROW_VECTORS __attribute__((target("prefer-vector-width=256")))
#else  // other compilers and CPUs: one width
#define OPTPROOF_NARROW_VECTORS
#endif

template <class Rule, int V, typename P, typename S>
OPTPROOF_NARROW_VECTORS static void run_range_256(
    const Item& it, int64_t b, int64_t e, int64_t flags) {
  loop<Rule, V, P, S>(it, b, e, flags);
}

template <class Rule, int V, typename P, typename S>
static constexpr RangeFn range_fn() {
  if constexpr (Rule::kNarrow && std::is_same_v<P, S> &&
                (std::is_same_v<P, float> || std::is_same_v<P, double>)) {
    return &run_range_256<Rule, V, P, S>;
  } else {
    return &run_range<Rule, V, P, S>;
  }
}

template <class Rule, int V>
static RangeFn pick(at::ScalarType pt, at::ScalarType st) {
  using at::BFloat16;
  using at::Half;
#define OPTPROOF_CASE(PT, ST, P, S) \
  if (pt == at::PT && st == at::ST) return range_fn<Rule, V, P, S>();
  OPTPROOF_CASE(kDouble, kDouble, double, double)
  OPTPROOF_CASE(kFloat, kFloat, float, float)
  OPTPROOF_CASE(kBFloat16, kBFloat16, BFloat16, BFloat16)
  OPTPROOF_CASE(kHalf, kHalf, Half, Half)
  OPTPROOF_CASE(kBFloat16, kFloat, BFloat16, float)
  OPTPROOF_CASE(kHalf, kFloat, Half, float)
#undef OPTPROOF_CASE
  TORCH_CHECK(false, "optproof_fused: unsupported (param, state) dtypes ", pt, ", ", st);
}

// ---------------------------------------------------------------- per-tensor counters

// Calls f(pointer, next) with a 1-element float32/float64 counter's address and its next value
// x * factor + add, computed in the counter's own dtype (as `step += 1` and
// `mu_product.mul_(mu)` do); returns what f returns.
template <typename F>
static bool with_counter(const at::Tensor& x, double factor, double add, F f) {
  TORCH_CHECK(x.numel() == 1 && x.is_cpu(), "optproof_fused: counters must be 1-element CPU tensors");
  if (x.scalar_type() == at::kFloat) {
    float* v = x.data_ptr<float>();
    return f(v, *v * static_cast<float>(factor) + static_cast<float>(add));
  }
  TORCH_CHECK(x.scalar_type() == at::kDouble, "optproof_fused: step/mu_product must be float32 or "
              "float64, got ", x.scalar_type());
  double* v = x.data_ptr<double>();
  return f(v, *v * factor + add);
}

// counters: none, one step tensor per parameter, or (NAdam) those followed by one mu_product
// per parameter.  Each must hold the value its row's scalars were computed from (T_OLD,
// PI_OLD) and become the one they assume (T_NEW, PI_NEW; NaN equals NaN): all are checked
// before any is written; false, with nothing written, on a mismatch.
static bool advance_counters(at::TensorList counters, int64_t n, const double* c,
                             c10::IntArrayRef rows) {
  if (counters.empty()) return true;
  const bool mu = static_cast<int64_t>(counters.size()) == 2 * n;
  TORCH_CHECK(mu || static_cast<int64_t>(counters.size()) == n, "optproof_fused: expected 0, ", n,
              " or ", 2 * n, " counters, got ", counters.size());
  auto same = [](double a, double b) { return a == b || (a != a && b != b); };
  for (const bool write : {false, true}) {
    for (int64_t i = 0; i < n; ++i) {
      const double* r = c + kMaxScalars * (rows.empty() ? 0 : rows[i]);
      for (int j = 0; j < (mu ? 2 : 1); ++j) {
        const double old = r[j ? PI_OLD : T_OLD], expected = r[j ? PI_NEW : T_NEW];
        const bool ok = with_counter(counters[j * n + i], j ? r[MU] : 1.0, j ? 0.0 : 1.0,
                                     [&](auto* v, auto next) {
          if (!same(*v, old) || !same(next, expected)) return false;
          if (write) *v = next;
          return true;
        });
        if (!ok) return false;
      }
    }
  }
  return true;
}

// All tensors of a param group in one call, whatever their dtypes: each becomes an Item, and
// one parallel region splits the range of all their elements evenly across the threads.
template <class Rule, int V>
static bool run(at::TensorList params, at::TensorList grads, at::TensorList states,
                at::TensorList counters, c10::ArrayRef<double> scalars, c10::IntArrayRef rows,
                int64_t flags) {
  constexpr int NS = Rule::states(V);
  const int64_t n = params.size();
  TORCH_CHECK(static_cast<int64_t>(grads.size()) == n, "optproof_fused: params/grads length mismatch");
  TORCH_CHECK(static_cast<int64_t>(states.size()) == NS * n, "optproof_fused: expected ", NS,
              " state tensors per parameter, got ", states.size(), " for ", n);
  const int64_t n_rows = scalars.size() / kMaxScalars;
  TORCH_CHECK(n_rows > 0 && static_cast<int64_t>(scalars.size()) == n_rows * kMaxScalars,
              "optproof_fused: scalars must hold whole rows of ", kMaxScalars, " values");
  TORCH_CHECK(rows.empty() || static_cast<int64_t>(rows.size()) == n, "optproof_fused: rows");
  for (const int64_t r : rows) TORCH_CHECK(0 <= r && r < n_rows, "optproof_fused: row ", r, " out of range");
  const double* c = scalars.data();
  std::vector<Item> items;
  std::vector<int64_t> start;
  std::vector<at::Tensor> keep;                              // temporaries kept alive
  std::vector<std::pair<at::Tensor, at::Tensor>> write_back;  // (strided output, dense copy)
  auto dense = [&](const at::Tensor& t, bool output) -> const at::Tensor& {
    // a wrapper tensor subclass (DTensor) or a fake/meta tensor has no memory to address
    TORCH_CHECK(t.has_storage() && t.storage().data() != nullptr,
                "optproof_fused: a tensor without CPU memory (a tensor subclass such as DTensor, "
                "or a fake/meta tensor) reached the CPU kernel; pass its local tensor");
    if (t.is_contiguous()) return t;
    keep.push_back(t.contiguous());  // non-contiguous views: compute on a dense copy
    if (output) write_back.emplace_back(t, keep.back());
    return keep.back();
  };
  keep.reserve(6 * n);  // dense() returns references into keep: never reallocated
  items.reserve(n);
  start.reserve(n + 1);
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const at::Tensor& p = params[i];
    const at::Tensor* g = &grads[i];
    TORCH_CHECK(!g->is_sparse(), "`fused` does not support sparse gradients");
    TORCH_CHECK(p.is_cpu() && g->is_cpu(), "optproof_fused: CPU kernel got a ", p.device(), " tensor");
    const int64_t numel = p.numel();
    TORCH_CHECK(g->numel() == numel, "optproof_fused: grad ", i, " has ", g->numel(),
                " elements, its parameter ", numel);
    if (numel == 0) continue;
    const auto pt = p.scalar_type();
    if (g->scalar_type() != pt) {
      keep.push_back(g->to(pt));
      g = &keep.back();
    }
    const auto st = NS ? states[i].scalar_type() : pt;
    Item it{dense(p, true).data_ptr(), dense(*g, false).const_data_ptr(), {nullptr, nullptr, nullptr},
            c + kMaxScalars * (rows.empty() ? 0 : rows[i]), numel, pick<Rule, V>(pt, st)};
    for (int j = 0; j < NS; ++j) {
      const at::Tensor& s = states[j * n + i];
      TORCH_CHECK(s.scalar_type() == st && s.numel() == numel && s.is_cpu(), "optproof_fused: state ",
                  j, " of parameter ", i, " has dtype ", s.scalar_type(), " and ", s.numel(),
                  " elements, expected ", st, " and ", numel);
      it.s[j] = dense(s, true).data_ptr();
    }
    items.push_back(it);
    start.push_back(total);
    total += numel;
  }
  start.push_back(total);
  if (!advance_counters(counters, n, c, rows)) return false;  // before any element is written
  // grain 2^17 elements: a group smaller than two grains runs on the calling thread (waking
  // a pool thread costs more than the work on a busy machine)
  at::parallel_for(0, total, 1 << 17, [&](int64_t begin, int64_t end) {
    int64_t k = std::upper_bound(start.begin(), start.end(), begin) - start.begin() - 1;
    for (; begin < end; ++k) {
      const int64_t stop = std::min(end, start[k + 1]);
      items[k].fn(items[k], begin - start[k], stop - start[k], flags);
      begin = stop;
    }
  });
  for (auto& [out, d] : write_back) out.copy_(d);
  return true;
}

// One step of a param group's bucket; false (nothing written) if a counter does not hold the
// value its row was computed from.
bool step(const std::string& rule, int64_t variant, int64_t flags,
          const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& grads,
          const std::vector<at::Tensor>& states, const std::vector<at::Tensor>& counters,
          const std::vector<double>& scalars, const std::vector<int64_t>& rows) {
  if (params.empty()) return true;
  const auto args = std::make_tuple(at::TensorList(params), at::TensorList(grads),
                                    at::TensorList(states), at::TensorList(counters),
                                    c10::ArrayRef<double>(scalars), c10::IntArrayRef(rows), flags);
  auto call = [&](auto fn) { return std::apply(fn, args); };
  if (rule == "sgd") {
    if (variant == 0) return call(run<SGD, 0>);
    if (variant == 1) return call(run<SGD, 1>);
    if (variant == 2) return call(run<SGD, 2>);
  } else if (rule == "adagrad") {
    return call(run<Adagrad, 0>);
  } else if (rule == "adadelta") {
    return call(run<Adadelta, 0>);
  } else if (rule == "rmsprop") {
    if (variant == 0) return call(run<RMSprop, 0>);
    if (variant == 1) return call(run<RMSprop, 1>);
    if (variant == 2) return call(run<RMSprop, 2>);
    if (variant == 3) return call(run<RMSprop, 3>);
  } else if (rule == "adam") {
    if (variant == 0) return call(run<Adam, 0>);
    if (variant == 1) return call(run<Adam, 1>);
  } else if (rule == "nadam") {
    return call(run<NAdam, 0>);
  }
  TORCH_CHECK(false, "optproof_fused: unknown rule/variant ", rule, "/", variant);
  return false;
}

// Counters advanced unconditionally, x <- x * factor + add (one factor per tensor, or one for
// all), returning the new values: one call where the host does not know the values yet.
std::vector<double> update_counters(const std::vector<at::Tensor>& xs,
                                    const std::vector<double>& factors, double add) {
  TORCH_CHECK(factors.size() == xs.size() || factors.size() == 1,
              "optproof_fused: one factor per tensor, or one for all");
  std::vector<double> out;
  out.reserve(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    with_counter(xs[i], factors[factors.size() == 1 ? 0 : i], add, [&](auto* v, auto next) {
      *v = next;
      out.push_back(next);
      return true;
    });
  }
  return out;
}

}  // namespace optproof_fused

// The kernels run without the GIL (as torch's own ops do); the arguments are converted before.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("step", &optproof_fused::step, pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("update_counters", &optproof_fused::update_counters);
  m.attr("vector_path") = optproof_fused::kVectorPath;
}
