/** Where an association's instances go, by Kaapana's AE title convention. */
export interface AeRoute {
  /** Project name: the called AE title `kp-<project>`, else the default project. */
  projectName: string;
  /** Dataset name: the calling AE title `kp-<dataset>`, else undefined (the import-date dataset). */
  datasetName: string | undefined;
  /** True when the called AE title named the project (an unknown one is refused). */
  projectNamed: boolean;
}

const PREFIX = /^kp-(.+)$/i;

/**
 * Kaapana's routing: a calling AE title `kp-<dataset>` puts the series into that
 * dataset, a called AE title `kp-<project>` into that project (project names are
 * lower-case; AE titles are matched without regard to case).
 */
export function aeRoute(input: { callingAe: string; calledAe: string; defaultProject: string }): AeRoute {
  const called = PREFIX.exec(input.calledAe.trim());
  const calling = PREFIX.exec(input.callingAe.trim());
  return {
    projectName: called ? called[1]!.toLowerCase() : input.defaultProject,
    datasetName: calling ? calling[1] : undefined,
    projectNamed: called !== null,
  };
}

/** `import-YYYY-MM-DD` in the server's local time: where data goes when no dataset is named. */
export function importDatasetName(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `import-${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}`;
}
