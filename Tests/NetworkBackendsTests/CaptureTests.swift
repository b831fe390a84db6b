import CPcap
import Testing
@testable import NetworkBackends

@Suite struct CaptureRecorderTests {
    @Test func libpcapReadsBackTheSameFramesAndLinkType() throws {
        let path = temporaryPath("frames.pcap")
        defer { removeTemporary(path) }
        let frames = [testFrame(marker: 1, size: 60), testFrame(marker: 2, size: 1514), testFrame(marker: 3, size: 9014)]
        let oversized = testFrame(marker: 4, size: 70000)
        let recorder = try CaptureRecorder(path: path)
        for frame in frames + [oversized] { frame.withUnsafeBytes { recorder.record($0) } }
        [UInt8]().withUnsafeBytes { recorder.record($0) }  // an empty frame is not written
        #expect(recorder.frames == 4)
        recorder.close()
        [UInt8](repeating: 0, count: 60).withUnsafeBytes { recorder.record($0) }  // after close: nothing

        let capture = try readCapture(path)
        #expect(capture.linkType == DLT_EN10MB)
        #expect(capture.snapshot == 65535)
        #expect(capture.frames.count == 4)
        for (read, written) in zip(capture.frames, frames) {
            #expect(read.bytes == written)
            #expect(read.length == UInt32(written.count))
        }
        // Longer than the snapshot length: cut to 65535 bytes, original length kept.
        #expect(capture.frames.last?.bytes == Array(oversized[0..<65535]))
        #expect(capture.frames.last?.length == 70000)
    }

    @Test func capturingBackendRecordsBothDirections() throws {
        let path = temporaryPath("both.pcap")
        defer { removeTemporary(path) }
        let recorder = try CaptureRecorder(path: path)
        let backend = CapturingBackend(wrapping: NullBackend(source: .frames(size: 100, count: 5)), recorder: recorder)
        let sent = (0..<3).map { testFrame(marker: UInt8(0x10 + $0), size: 80) }
        #expect(sent.withUnsafeBufferPointers { backend.transmit($0) } == 3)
        let collector = FrameCollector()
        try backend.start(receive: collector.receive)
        #expect(waitUntil { collector.all.count == 5 })
        backend.stop()
        // Stop flushed the file: it is readable before the recorder closes.
        let capture = try readCapture(path)
        #expect(capture.frames.map(\.bytes) == sent + collector.all)
        #expect(Set(collector.all) == Set((0..<5).map { NullBackend.Source.frames(size: 100).frame(UInt64($0)) }))
        #expect(backend.counters.transmitted == 3 && backend.counters.received == 5)
        recorder.close()
    }

    @Test func sharedRecorderIsThreadSafe() throws {
        let path = temporaryPath("shared.pcap")
        defer { removeTemporary(path) }
        let recorder = try CaptureRecorder(path: path)
        let sources = (0..<4).map { _ in NullBackend(source: .frames(size: 200, count: 500)) }
        let collectors = sources.map { _ in FrameCollector() }
        for (source, collector) in zip(sources, collectors) {
            try CapturingBackend(wrapping: source, recorder: recorder).start(receive: collector.receive)
        }
        #expect(waitUntil { sources.allSatisfy(\.sourceFinished) })
        sources.forEach { $0.stop() }
        recorder.close()
        let capture = try readCapture(path)
        #expect(capture.frames.count == 2000)
        #expect(capture.frames.allSatisfy { $0.bytes.count == 200 && $0.length == 200 })
    }

    @Test func unwritablePathIsOneClearLine() {
        let path = "/nonexistent-hv-test-directory/capture.pcap"
        #expect {
            try CaptureRecorder(path: path)
        } throws: { error in
            let text = (error as? NetworkBackendError)?.description ?? ""
            return text.hasPrefix("capture: cannot write \(path)") && text.contains("No such file or directory") && !text.contains("\n")
        }
    }
}
