import type { ProjectRole } from '@tessera/api';

/** Who a request acts for, once authenticated. */
export interface Principal {
  user: { id: string; name: string; admin: boolean; mustChangePassword: boolean };
  /** How the request was signed in. */
  via: 'session' | 'token' | 'run' | 'application' | 'auth-off';
  /** The session or token used (to end the session at sign-out, or revoke the token). */
  credentialId: string | undefined;
  /** The user's roles by project id (an admin's are implied: principal investigator everywhere). */
  roles: ReadonlyMap<string, ProjectRole>;
  /**
   * A scoped credential (a run's or an application instance's): it acts in this one
   * project only, with at most this role, and never as an admin.
   */
  scope: { projectId: string; role: ProjectRole; subject: string } | undefined;
}

const RANK: Record<ProjectRole, number> = { scientist: 1, 'principal-investigator': 2 };

/** True when `role` grants at least what `needed` does. */
export function roleSatisfies(role: ProjectRole | undefined, needed: ProjectRole): boolean {
  return role !== undefined && RANK[role] >= RANK[needed];
}

/** The lesser of two roles. */
export function lesserRole(a: ProjectRole, b: ProjectRole): ProjectRole {
  return RANK[a] <= RANK[b] ? a : b;
}

/** A platform admin, unless the credential is scoped to one project. */
export function isAdmin(p: Principal): boolean {
  return p.user.admin && p.scope === undefined;
}

/** The principal's role in a project, or undefined when they are not a member (then the project does not exist for them). */
export function roleIn(p: Principal, projectId: string): ProjectRole | undefined {
  const own: ProjectRole | undefined = p.user.admin ? 'principal-investigator' : p.roles.get(projectId);
  if (p.scope === undefined) return own;
  if (p.scope.projectId !== projectId || own === undefined) return undefined;
  // A scoped credential never exceeds what its user may do now: a starter removed from the project stops their runs' rights.
  return lesserRole(own, p.scope.role);
}

/** The projects the principal may see: 'all' for an admin, else the ids of their projects. */
export function visibleProjects(p: Principal): 'all' | ReadonlySet<string> {
  if (p.scope !== undefined) return roleIn(p, p.scope.projectId) ? new Set([p.scope.projectId]) : new Set();
  if (p.user.admin) return 'all';
  return new Set(p.roles.keys());
}
