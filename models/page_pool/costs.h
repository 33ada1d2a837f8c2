// Parameters of the page_pool model: PoolParams from a scenario, and the cost defaults.
#pragma once
#include "models/page_pool/page_pool.h"
#include "sim/params.h"

namespace ppsim::page_pool {

// Declares the "page_pool.*" parameters (flags, sizes and the cost of each path).
void register_params(sim::ParamRegistry& reg);
// Builds PoolParams / PoolCosts from resolved parameters; throws ScenarioError (with the JSON
// path) for combinations page_pool_init() would refuse.
PoolParams pool_params_from(const sim::Params& p);
PoolCosts pool_costs_from(const sim::Params& p);

}  // namespace ppsim::page_pool
