import { PASSWORD_MIN } from '../access.ts';

/** The fields of a new password: current (when asked), new, and new again (named by aria-label: the help and error texts in their labels are no part of their names). */
export function PasswordFields(props: {
  askCurrent: boolean;
  current: string;
  setCurrent: (v: string) => void;
  password: string;
  setPassword: (v: string) => void;
  again: string;
  setAgain: (v: string) => void;
  problem: string | undefined;
}) {
  const { askCurrent, current, setCurrent, password, setPassword, again, setAgain, problem } = props;
  return (
    <>
      {askCurrent && (
        <label className="field">
          <span className="label">Current password</span>
          <input type="password" aria-label="Current password" autoComplete="current-password" autoFocus value={current} onChange={(e) => setCurrent(e.target.value)} />
        </label>
      )}
      <label className="field">
        <span className="label">New password</span>
        <input type="password" aria-label="New password" autoComplete="new-password" autoFocus={!askCurrent} value={password} onChange={(e) => setPassword(e.target.value)} aria-describedby="password-rule" />
        <span className="field-help" id="password-rule">
          At least {PASSWORD_MIN} characters; a few words make a good one.
        </span>
      </label>
      <label className="field">
        <span className="label">New password again</span>
        <input type="password" aria-label="New password again" autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} />
        {problem && (password.length > 0 || again.length > 0) && <span className="field-error">{problem}</span>}
      </label>
    </>
  );
}
