export default function Extensions(_props: Record<string, unknown>) {
  return (
    <div className="page">
      <h1>Extensions</h1>
    </div>
  );
}
