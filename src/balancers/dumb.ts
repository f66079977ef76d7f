/** DumbBalancer (as in Go Metafora): claims everything, never releases anything. */
import type { Balancer, ClaimDecision } from "../types.ts";

const CLAIM: ClaimDecision = { claim: true };

export class DumbBalancer implements Balancer {
  canClaim(): ClaimDecision {
    return CLAIM;
  }
  balance(): string[] {
    return [];
  }
}
