// xhr2 ships no types: an XMLHttpRequest for Node, used by tests to drive dicomweb-client (a browser library).
declare module 'xhr2' {
  const XMLHttpRequest: unknown;
  export default XMLHttpRequest;
}
