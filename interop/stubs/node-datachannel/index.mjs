import stub from './index.cjs'
export const { initLogger, PeerConnection } = stub
export default stub
