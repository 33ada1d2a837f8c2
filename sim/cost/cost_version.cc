// The cost models are pure functions of their inputs; this tag lets results name the revision.
namespace ppsim::cost {
const char* cost_model_revision() { return "1"; }
}  // namespace ppsim::cost
