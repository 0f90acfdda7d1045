/** Upper-layer PDU types (PS3.8 section 9.3). */
export const PDU_TYPE = {
  associateRq: 0x01,
  associateAc: 0x02,
  associateRj: 0x03,
  pDataTf: 0x04,
  releaseRq: 0x05,
  releaseRp: 0x06,
  abort: 0x07,
} as const;

/** PDU names for log messages, by type. */
export const PDU_NAMES: Record<number, string> = {
  [PDU_TYPE.associateRq]: 'A-ASSOCIATE-RQ',
  [PDU_TYPE.associateAc]: 'A-ASSOCIATE-AC',
  [PDU_TYPE.associateRj]: 'A-ASSOCIATE-RJ',
  [PDU_TYPE.pDataTf]: 'P-DATA-TF',
  [PDU_TYPE.releaseRq]: 'A-RELEASE-RQ',
  [PDU_TYPE.releaseRp]: 'A-RELEASE-RP',
  [PDU_TYPE.abort]: 'A-ABORT',
};

/** Item types inside A-ASSOCIATE-RQ/AC. */
export const ITEM_TYPE = {
  applicationContext: 0x10,
  presentationContextRq: 0x20,
  presentationContextAc: 0x21,
  abstractSyntax: 0x30,
  transferSyntax: 0x40,
  userInfo: 0x50,
  maxLength: 0x51,
  implementationClassUid: 0x52,
  asyncOpsWindow: 0x53,
  implementationVersionName: 0x55,
} as const;

/** The only application context name DICOM defines. */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

/** Our implementation class UID and version name, sent in every A-ASSOCIATE-AC. */
export const IMPLEMENTATION_CLASS_UID = '1.2.826.0.1.3680043.10.1515.1';
export const IMPLEMENTATION_VERSION_NAME = 'TESSERA_010';

/** A-ABORT source field. */
export const ABORT_SOURCE = { serviceUser: 0, serviceProvider: 2 } as const;

/** A-ABORT reason/diag when the source is the service provider. */
export const ABORT_REASON = {
  notSpecified: 0,
  unrecognizedPdu: 1,
  unexpectedPdu: 2,
  unrecognizedPduParameter: 4,
  unexpectedPduParameter: 5,
  invalidPduParameterValue: 6,
} as const;

/** Presentation context result/reason in A-ASSOCIATE-AC. */
export const CONTEXT_RESULT = {
  acceptance: 0,
  userRejection: 1,
  providerRejection: 2,
  abstractSyntaxNotSupported: 3,
  transferSyntaxesNotSupported: 4,
} as const;

/**
 * The peer broke the upper-layer or DIMSE protocol. The association is
 * aborted with `abortReason` (an A-ABORT provider reason).
 */
export class ProtocolError extends Error {
  readonly abortReason: number;

  constructor(message: string, options: { abortReason?: number } = {}) {
    super(message);
    this.name = 'ProtocolError';
    this.abortReason = options.abortReason ?? ABORT_REASON.invalidPduParameterValue;
  }
}
