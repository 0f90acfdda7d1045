import type { ProposedContext } from './associate-rq.ts';
import { CONTEXT_RESULT } from './pdu-constants.ts';
import { isAcceptedAbstractSyntax, pickTransferSyntax } from './transfer-syntaxes.ts';

/** Our answer to one proposed presentation context. */
export interface NegotiatedContext {
  id: number;
  abstractSyntax: string;
  /** One of {@link CONTEXT_RESULT}. */
  result: number;
  /** The accepted transfer syntax; for a refused context, the first proposed one (PS3.8: not tested). */
  transferSyntax: string;
}

/**
 * Accepts Verification and standard Storage SOP classes, each with the first
 * proposed transfer syntax we support (the proposer's order is its
 * preference); refuses everything else per context.
 */
export function negotiateContexts(proposed: readonly ProposedContext[]): NegotiatedContext[] {
  const seen = new Set<number>();
  return proposed.map((context) => {
    const answer = (result: number, transferSyntax = context.transferSyntaxes[0] ?? ''): NegotiatedContext => ({
      id: context.id,
      abstractSyntax: context.abstractSyntax,
      result,
      transferSyntax,
    });
    // Context IDs are odd and unique (PS3.8 9.3.2.2); a duplicate would make PDVs ambiguous.
    if (context.id % 2 === 0 || seen.has(context.id)) return answer(CONTEXT_RESULT.providerRejection);
    seen.add(context.id);
    if (!isAcceptedAbstractSyntax(context.abstractSyntax)) return answer(CONTEXT_RESULT.abstractSyntaxNotSupported);
    const transferSyntax = pickTransferSyntax(context.transferSyntaxes);
    if (transferSyntax === undefined) return answer(CONTEXT_RESULT.transferSyntaxesNotSupported);
    return answer(CONTEXT_RESULT.acceptance, transferSyntax);
  });
}
