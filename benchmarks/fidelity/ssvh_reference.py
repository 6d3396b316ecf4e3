"""SSVH against an independent numpy transcription of the authors' Theano graph (benchmarks/fidelity/ssvh.md).

The authors' code (Theano 0.8.2, Python 2) cannot run here. This script rewrites its forward pass and loss in
numpy, unit by unit as ``SSVH/layers.py`` (LSTM_Unit, LSTM_Dec, BatchNormalization, BinaryLayer) and
``SSVH/model.py`` (the hierarchical wiring and the loss) write them, copies the suite model's weights into it,
and compares the loss terms on two fixed tiny batches (the second one sees the first's memory rows, the last
one is short and zero-padded). It also lists the authors' parameter shapes for a configuration next to the
suite's. Run: ``python benchmarks/fidelity/ssvh_reference.py``.
"""

from __future__ import annotations

import numpy as np
import torch

from ssvh_bench import ArrayFeatures, Batch, method_registry

N_VIDEOS, FRAMES, DIM, BITS, STRIDE, BATCH = 10, 4, 5, 6, 2, 6
EPS = 1e-10


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def c_round(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)  # C's round(): halves away from zero


def binary_tanh_unit(x):  # layers.py: BinaryLayer
    return 2 * c_round(np.clip((x + 1) / 2, 0, 1)) - 1


def batch_norm(x, gamma, beta):  # layers.py: BatchNormalization.set_output(train=True)
    m = x.mean(axis=0)
    std = np.sqrt(((x - m) ** 2 + EPS).mean(axis=0))
    return gamma * (x - m) / (std + EPS) + beta


def unit(par, step, input_frame, cell_previous, hid_previous, *, use_th):
    """LSTM_Unit.step (use_th False, with an input) and LSTM_Dec.step (no input, use_th True)."""
    gates = {}
    for gate in ("ingate", "forgetgate", "cell", "outgate"):
        gates[gate] = hid_previous @ par[f"W_hid_to_{gate}"] + par[f"b_{gate}"]
        if input_frame is not None:
            gates[gate] = gates[gate] + input_frame @ par[f"W_in_to_{gate}"]
    ingate = sigmoid(gates["ingate"] + cell_previous * par["W_cell_to_ingate"])
    forgetgate = sigmoid(gates["forgetgate"] + cell_previous * par["W_cell_to_forgetgate"])
    cell = forgetgate * cell_previous + ingate * np.tanh(gates["cell"])
    cell_bn = batch_norm(cell, par["gamma"][step], par["beta"][step])
    outgate = sigmoid(gates["outgate"] + cell_bn * par["W_cell_to_outgate"])
    return cell_bn, outgate * (np.tanh(cell_bn) if use_th else cell_bn)


def authors_params(lstm) -> dict[str, np.ndarray]:
    """The suite's BatchNormLSTM weights under the authors' names (one matrix per gate)."""
    d = lstm.hidden_size
    out = {}
    for k, gate in enumerate(("ingate", "forgetgate", "cell", "outgate")):
        columns = slice(k * d, (k + 1) * d)
        if lstm.weight_input is not None:
            out[f"W_in_to_{gate}"] = lstm.weight_input[:, columns].double().detach().numpy()
        out[f"W_hid_to_{gate}"] = lstm.weight_hidden[:, columns].double().detach().numpy()
        out[f"b_{gate}"] = lstm.bias[columns].double().detach().numpy()
    for k, gate in enumerate(("ingate", "forgetgate", "outgate")):
        out[f"W_cell_to_{gate}"] = lstm.peephole[k].double().detach().numpy()
    out["gamma"] = lstm.gamma.double().detach().numpy()
    out["beta"] = lstm.beta.double().detach().numpy()
    return out


def output_layer(linear):
    return linear.weight.double().detach().numpy().T, linear.bias.double().detach().numpy()


def reference_losses(model, x, idx, H, SS, *, lamb=0.2, pairwise_weight=0.999):
    """model.py's comp_(train=True) for one batch x [batch_size, v_length, F] (zero-padded), the indices of
    its real rows and the memory H; returns (H_, loss_pairwise, reconstruction_loss, loss)."""
    v_length, hiera = FRAMES, STRIDE
    en = authors_params(model.encoder.fine)
    en_sec = authors_params(model.encoder.coarse)
    zeros = np.zeros((x.shape[0], BITS))
    hid, cell, fine = zeros, zeros, []
    for i in range(v_length):  # netlu
        cell, hid = unit(en, i, x[:, i], cell, hid, use_th=False)
        fine.append(hid)
    hid, cell = zeros, zeros
    for i in range(v_length // hiera):  # net_en_hiera: LSTM_Unit(2i), BinaryLayer(2i + 1)
        cell, my_H = unit(en_sec, i, fine[(i + 1) * hiera - 1], cell, hid, use_th=False)
        hid = binary_tanh_unit(my_H)
    state = (cell, hid)  # what the decoders' first units read: [binary h, real cell]

    def high(decoder, steps):
        par, (c, h), outs = authors_params(decoder.coarse), state, []
        for i in range(steps):
            c, h = unit(par, i, None, c, h, use_th=True)
            outs.append(h)
        return outs

    ru_high, rv_high = high(model.backward_decoder, v_length // hiera), high(model.forward_decoder, v_length // hiera)

    def low(decoder, inputs):
        par, (c, h), outs = authors_params(decoder.fine), (zeros, zeros), []
        w, b = output_layer(decoder.output)
        for i, frame in enumerate(inputs):
            c, h = unit(par, i, frame, c, h, use_th=False)
            outs.append(h @ w + b)
        return outs

    y_pred = low(model.backward_decoder, [ru_high[i // hiera] for i in range(v_length)])
    # model.py:152-161: even steps read their own coarse output, in-between steps net_ru_high's
    y_pred2 = low(model.forward_decoder, [rv_high[i // hiera] if i % hiera == 0 else ru_high[i // hiera]
                                          for i in range(v_length)])
    y_mean = low(model.mean_decoder, high(model.mean_decoder, 1))

    H_ = H.copy()
    H_[idx] = my_H[: len(idx)]
    SS_ = np.zeros((x.shape[0], SS.shape[1]))
    SS_[: len(idx)] = SS[idx]
    loss_pairwise = np.sum((my_H @ H_.T / BITS - SS_) ** 2) + lamb * np.sum((my_H - np.sign(my_H)) ** 2)
    loss_backward = sum(np.sum((x[:, -1 - i] - y_pred[i]) ** 2) for i in range(v_length))
    loss_forward = sum(np.sum((x[:, i] - y_pred2[i]) ** 2) for i in range(v_length))
    loss_mean = v_length * np.sum((x.mean(axis=1) - y_mean[0]) ** 2)
    reconstruction = (loss_backward + loss_forward + loss_mean) / 3
    loss = loss_pairwise * pairwise_weight + reconstruction * (1 - pairwise_weight)
    return H_, loss_pairwise, reconstruction, loss


def compare_losses() -> list[tuple[str, float, float]]:
    data = ArrayFeatures(np.random.default_rng(0).normal(size=(N_VIDEOS, FRAMES, DIM)).astype(np.float32))
    method = method_registry.create("ssvh", max_frames=FRAMES, stride=STRIDE, k1=3, k2=2, batch_size=BATCH)
    method.bits, method.device = BITS, torch.device("cpu")
    method.prepare(data, bits=BITS, seed=0, device=method.device, cache_dir=None, progress=False)
    torch.manual_seed(0)
    model = method.build_model(FRAMES, DIM, BITS)
    method.build_optimizer(model)
    method.on_epoch_start(model, 0, data)
    SS = method.similarity.toarray().astype(np.float64)
    H = np.zeros((N_VIDEOS, BITS))
    rows = []
    for number, idx in enumerate((np.array([0, 3, 4, 7, 8, 9]), np.array([1, 2, 5, 6]))):  # the last one short
        features = data.read(idx)
        with torch.no_grad():
            suite = method.training_losses(model, Batch(torch.from_numpy(features), torch.from_numpy(idx)), 0,
                                           torch.Generator())
        padded = np.zeros((BATCH, FRAMES, DIM))
        padded[: len(idx)] = features
        H, pairwise, reconstruction, loss = reference_losses(model, padded, idx, H, SS)
        suite_pairwise = suite["neighbourhood"].item() + method.quantization_weight * suite["quantization"].item()
        rows += [(f"batch {number + 1}: pairwise (neighbourhood + 0.2 quantization)", pairwise, suite_pairwise),
                 (f"batch {number + 1}: reconstruction", reconstruction, suite["reconstruction"].item()),
                 (f"batch {number + 1}: loss", loss, suite["loss"].item()),
                 (f"batch {number + 1}: memory H (sum of |entries|)", np.abs(H).sum(),
                  method.memory.abs().sum().item())]
    return rows


def authors_parameter_shapes(d: int, f: int, n: int, s: int) -> dict[str, int]:
    """Parameter counts of Pairwise-BLSTM.py's build_model for dim_proj d, dim_frame = output_dim f, v_length n,
    hiera_step s (layers.py: LstmParams, DecLstmParams, one gamma/beta pair per unit)."""
    def lstm(inputs, output):  # LstmParams(d, inputs, output)
        return 4 * inputs * d + 4 * d * d + 4 * d + 3 * d + d * output + output
    dec = 4 * d * d + 4 * d + 3 * d + d * d + d  # DecLstmParams(d, d): W_output (d, d) and b_output (d)
    bn = 2 * d
    return {"encoder fine (LstmParams(d, F, F)) + n BN": lstm(f, f) + n * bn,
            "encoder coarse (LstmParams(d, d, F)) + n/s BN": lstm(d, f) + n // s * bn,
            "2 x coarse decoder (DecLstmParams) + n/s BN": 2 * (dec + n // s * bn),
            "2 x fine decoder (LstmParams(d, d, F)) + n BN": 2 * (lstm(d, f) + n * bn),
            "mean decoder (DecLstmParams + LstmParams(d, d, F)) + 2 BN": dec + lstm(d, f) + 2 * bn}


def suite_parameter_counts(d: int, f: int, n: int) -> dict[str, int]:
    model = method_registry.create("ssvh").build_model(n, f, d)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    return {"encoder fine": count(model.encoder.fine), "encoder coarse": count(model.encoder.coarse),
            "coarse decoders": count(model.forward_decoder.coarse) + count(model.backward_decoder.coarse),
            "fine decoders": sum(count(m) for m in (model.forward_decoder.fine, model.forward_decoder.output,
                                                     model.backward_decoder.fine, model.backward_decoder.output)),
            "mean decoder": count(model.mean_decoder)}


def main() -> None:
    print("| quantity | numpy transcription of the authors' graph | suite | relative difference |")
    print("|---|---|---|---|")
    for name, reference, suite in compare_losses():
        print(f"| {name} | {reference:.6f} | {suite:.6f} | {abs(reference - suite) / abs(reference):.1e} |")
    d, f, n, s = 256, 4096, 24, 2
    print(f"\nParameters, dim_proj {d}, 4096-d frames, 24 frames, stride 2:\n")
    print("| block | authors | suite | difference |")
    print("|---|---|---|---|")
    for (name, authors), (_, suite) in zip(authors_parameter_shapes(d, f, n, s).items(),
                                           suite_parameter_counts(d, f, n).items()):
        print(f"| {name} | {authors:,} | {suite:,} | {authors - suite:,} |")


if __name__ == "__main__":
    main()
