// Lists and forces Highway targets. Compiled for every attainable target so that the
// current-target query reports what the kernels (compiled the same way) dispatch to.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "simd_targets.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {
int64_t CompiledTarget() { return HWY_TARGET; }
}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>

#include "simdnn/simd_targets.h"
#include "testing/simdnn/testing/simd_target_control.h"

namespace simdnn {
HWY_EXPORT(CompiledTarget);

std::vector<std::string> available_simd_targets() {
  std::vector<std::string> names;
  // SupportedAndGeneratedTargets lists lowest bit first, which on x86 is the best target.
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) names.emplace_back(hwy::TargetName(t));
  return names;
}

std::string current_simd_target() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(CompiledTarget)()); }

void force_simd_target(const std::string& name) {
  if (name.empty()) {
    hwy::SetSupportedTargetsForTest(0);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
    return;
  }
  hwy::SetSupportedTargetsForTest(0);
  for (int64_t t : hwy::SupportedAndGeneratedTargets()) {
    if (name == hwy::TargetName(t)) {
      hwy::SetSupportedTargetsForTest(t);
      hwy::GetChosenTarget().Update(hwy::SupportedTargets());
      return;
    }
  }
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
  throw std::invalid_argument("force_simd_target: '" + name +
                              "' is not a SIMD target compiled in and supported by this CPU");
}

}  // namespace simdnn
#endif  // HWY_ONCE
