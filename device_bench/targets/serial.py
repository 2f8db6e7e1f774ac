"""The `serial://PORT` target: latency measured on a real board running the benchmark sketch.

The board runs the model and prints serial_protocol.py's lines; this target reads them, computes
the same statistics as the CPU targets, and with a board profile checks flash (the .tflite size)
and RAM (the arena the sketch reported).

>>> SerialTarget("/dev/ttyACM0", baudrate=9600).baudrate
9600
"""

from device_bench import boards, results, stats
from device_bench.errors import BenchError
from device_bench.modelfile import read_tflite
from device_bench.schema import BenchmarkResult, MicroReport, ModelResult
from device_bench.serial_protocol import read_port


class SerialTarget:
    def __init__(self, port, baudrate=115200, timeout=60.0, board=None, boards_file=None):
        self.port, self.baudrate, self.timeout = port, baudrate, timeout
        self.board = boards.find_board(board, boards_file) if board else None
        self.name = f"serial://{port}"

    def run(self, graphs, settings):
        if len(graphs) != 1:
            raise BenchError("the serial target reads one model per run (the one flashed on the "
                             f"board); got {len(graphs)} --graph values")
        data = read_tflite(graphs[0])
        parser = read_port(self.port, self.baudrate, self.timeout)
        model = ModelResult(graph=graphs[0], size_bytes=len(data),
                            latency=stats.summarize(parser.samples_us))
        if self.board and parser.arena_bytes is not None:
            micro = MicroReport(ops=[], arena_used_bytes=parser.arena_bytes,
                                arena_min_bytes=None, board=self.board.name)
            micro.flash, micro.ram, micro.verdict = boards.check_fit(self.board, len(data),
                                                                     parser.arena_bytes)
            micro.fits = micro.flash.fits and micro.ram.fits
            model.micro = micro
        results.add_noise_warning(model)
        # The sketch decides threads and runs, so the host's run settings do not describe it.
        return BenchmarkResult(target=self.name, settings={},
                               runtime={"board_model_name": parser.model,
                                        "baudrate": self.baudrate},
                               models=[model], warnings=model.warnings)
