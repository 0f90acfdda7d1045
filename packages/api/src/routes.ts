import { dicomWebRoutes } from './dicomweb.ts';
import { extensionRoutes } from './extensions.ts';
import { dataRoutes } from './data.ts';
import { datasetRoutes } from './datasets.ts';
import { dicomSenderRoutes } from './dicom-senders.ts';
import { applicationRoutes } from './applications.ts';
import { authRoutes } from './auth.ts';
import { platformRoutes } from './platform.ts';
import { projectRoutes } from './projects.ts';
import { resultRoutes } from './results.ts';
import type { RouteContract } from './route.ts';
import { workflowRoutes } from './workflows.ts';

/** Every domain's routes, by domain. The server declares each of them; access control iterates them. */
export const apiRoutes = {
  platform: platformRoutes,
  auth: authRoutes,
  projects: projectRoutes,
  workflows: workflowRoutes,
  dicomweb: dicomWebRoutes,
  extensions: extensionRoutes,
  data: dataRoutes,
  datasets: datasetRoutes,
  dicomSenders: dicomSenderRoutes,
  applications: applicationRoutes,
  results: resultRoutes,
} as const;

/** Every route of the HTTP API, in one list. */
export const allRoutes: readonly RouteContract[] = Object.values(apiRoutes).flatMap((domain) => Object.values(domain) as RouteContract[]);

/** The OpenAPI document's tags, in the order a reader meets them. */
export const API_TAGS = [
  { name: 'platform', description: 'Health, what the server found, the event stream, this document.' },
  { name: 'access', description: 'Signing in, who the caller is, API tokens, users, project members, the audit log.' },
  { name: 'projects', description: 'Projects: every entity that holds data belongs to one.' },
  { name: 'workflows', description: 'Workflows, jobs, runs, tasks and their logs.' },
  { name: 'extensions', description: 'The extension catalog: packages, installs, upgrades, uninstalls.' },
  { name: 'applications', description: 'Application instances: launch, stop, logs; served on subpaths by the proxy.' },
  { name: 'data', description: "The DICOM store's series and instances: search, facets, thumbnails, import, export, delete; who may send DICOM to a project." },
  { name: 'datasets', description: 'Named sets of series inside a project.' },
  { name: 'results', description: "Runs' result buckets." },
  { name: 'dicomweb', description: 'DICOMweb (PS3.18): QIDO-RS, WADO-RS, STOW-RS; at /dicom-web for the default project and /projects/{project}/dicom-web.' },
] as const;
