// A valid workflow module that lies outside the escaping-path extension folder:
// the loader must refuse it because of where it is, not because it is broken.
import { defineOperator, defineWorkflow } from '@tessera/sdk';

const workflow = defineWorkflow({ id: 'outside' });
workflow.task(defineOperator({ name: 'noop', builtin: 'noop' }));
export default workflow;
