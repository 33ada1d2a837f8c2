#include "models/nic/wire.h"

#include <cmath>
#include <initializer_list>

namespace ppsim::nic {

bool is_standard_line_rate(double gbps) {
  for (double r : {1.0, 2.5, 5.0, 10.0, 25.0, 40.0, 50.0, 100.0, 200.0, 400.0})
    if (std::fabs(gbps - r) < 1e-9) return true;
  return false;
}

}  // namespace ppsim::nic
