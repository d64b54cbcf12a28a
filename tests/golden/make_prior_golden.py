"""Golden values for MedVlp's PRIOR model (src/MedVlp/Architectures/Prior) from a PyTorch reference written after the
released code (QtacierP/PRIOR: codes/prior/models/prior.py, encoders/image/resnet.py, modules/*.py, decoders/*.py,
downstream/zero_classification_model.py), never from MedVlp's code, at tiny sizes:

  * image_encoder.encoder     torchvision 0.14's own ResNet / Bottleneck code (stem 8, planes 4, 8, 16, 32, one block per
                              stage, 1 input channel, fc = Identity); 64 x 64 input, a 2 x 2 layer4 map
  * local tokens              local_features.view(B, -1, C) on the NCHW map: a plain reshape, no permute (as released)
  * image_encoder.atten_pool  the released AttentionPool2d (CLIP), 2 heads, positional embedding (2*2 + 1, 128)
  * text_encoder.encoder      a Hugging Face-layout BERT (post-norm, GELU), width 32, 2 layers, 2 heads
  * global_text_attention     the released SentenceAttentionPool (pos_embed=False), 2 heads, once per report
  * item_gather               the released SentenceGather('avg') over batch['text_meta']['sentence_index']
  * local_cross_attention     the released LocalCrossAttention (sigmoid), once per report
  * sentence_bank             the released SPB (K = 32, temp 0.9) with F.gumbel_softmax replaced by its noise-free
                              softmax(dist / tau) (the noise is a random stream that cannot match across libraries)
  * image_decoder             the released ImageDecoder (Conv2dReLU = conv without bias, BN, ReLU; nearest upsampling to
                              4, 8, 16, 32, 64; head conv 2 -> 1; L1), channel dropout p = 0 so it is deterministic
  * sentence_decoder          Hugging Face's BertModel as a decoder with cross-attention (causal self-attention mask),
                              width 32, 2 layers, 2 heads, fed inputs_embeds = the learned queries (num_queries = 3 here
                              so that the report with 4 sentences is truncated in stage 3)
  * losses                    stage1_step, stage2_step, stage3_step as released (per-report loops, scipy's
                              linear_sum_assignment on cdist(p=1), logit[inds[1]], KL batchmean over real sentences)
  * zero-shot                 shared_step with one prompt per class ("{class} is observed"), eval mode

The model runs in training mode (BatchNorm on batch statistics), float64, stage 1, then 2, then 3 on the same batch; the
gradients of stage 3's total are stored for key parameters. Stores param/<name> (MedVlp names), input/*, s{1,2,3}/*,
grad/<name>, zs/scores. Writes data/prior_golden.safetensors. Run: /usr/bin/python3 tests/golden/make_prior_golden.py
"""
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision.models.resnet as tvr
from scipy.optimize import linear_sum_assignment
from golden_io import save_f32_safetensors  # the shared writer (tests/golden/golden_io.py)

torch.manual_seed(2023)
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
VOCAB, H, POS, D, K, Q, SIDE = 50, 32, 64, 32, 32, 3, 64


def tiny_resnet():
    m = tvr.ResNet.__new__(tvr.ResNet)
    nn.Module.__init__(m)
    m._norm_layer, m.inplanes, m.dilation, m.groups, m.base_width = nn.BatchNorm2d, 8, 1, 1, 64
    m.conv1 = nn.Conv2d(1, 8, kernel_size=7, stride=2, padding=3, bias=False)
    m.bn1 = nn.BatchNorm2d(8)
    m.relu = nn.ReLU(inplace=True)
    m.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    m.layer1 = m._make_layer(tvr.Bottleneck, 4, 1)
    m.layer2 = m._make_layer(tvr.Bottleneck, 8, 1, stride=2)
    m.layer3 = m._make_layer(tvr.Bottleneck, 16, 1, stride=2)
    m.layer4 = m._make_layer(tvr.Bottleneck, 32, 1, stride=2)
    m.fc = nn.Identity()
    return m


class AttentionPool2d(nn.Module):  # released encoders/image/resnet.py
    def __init__(self, spacial_dim, embed_dim, num_heads):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(spacial_dim ** 2 + 1, embed_dim) / embed_dim ** 0.5)
        self.k_proj, self.q_proj, self.v_proj, self.c_proj = [nn.Linear(embed_dim, embed_dim) for _ in range(4)]
        self.num_heads = num_heads

    def forward(self, x):
        x = x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3]).permute(2, 0, 1)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        x = x + self.positional_embedding[:, None, :].to(x.dtype)
        x, _ = F.multi_head_attention_forward(query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
                                              q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
                                              in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
                                              bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0, out_proj_weight=self.c_proj.weight,
                                              out_proj_bias=self.c_proj.bias, use_separate_proj_weight=True, training=self.training, need_weights=False)
        return x[0]


class ImageEncoder(nn.Module):  # released ResNet wrapper, pool_method='attention'
    def __init__(self):
        super().__init__()
        self.encoder = tiny_resnet()
        self.atten_pool = AttentionPool2d(2, 128, 2)

    def forward(self, x):
        e = self.encoder
        x = e.maxpool(e.relu(e.bn1(e.conv1(x))))
        x = e.layer4(e.layer3(e.layer2(e.layer1(x))))
        global_x = self.atten_pool(x)
        local = x.view(x.shape[0], -1, x.shape[1])
        return local, global_x.view(global_x.size(0), -1)


class SentenceAttentionPool(nn.Module):  # released modules/sentence_pool.py, pos_embed=False
    def __init__(self, embed_dim, num_heads):
        super().__init__()
        self.k_proj, self.q_proj, self.v_proj, self.c_proj = [nn.Linear(embed_dim, embed_dim) for _ in range(4)]
        self.num_heads = num_heads

    def forward(self, x):
        x = x.permute(1, 0, 2)
        x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
        x, _ = F.multi_head_attention_forward(query=x, key=x, value=x, embed_dim_to_check=x.shape[-1], num_heads=self.num_heads,
                                              q_proj_weight=self.q_proj.weight, k_proj_weight=self.k_proj.weight, v_proj_weight=self.v_proj.weight,
                                              in_proj_weight=None, in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
                                              bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0, out_proj_weight=self.c_proj.weight,
                                              out_proj_bias=self.c_proj.bias, use_separate_proj_weight=True, training=self.training, need_weights=False)
        return x[0]


class SelfOrCross(nn.Module):  # Hugging Face BertAttention (BertSelfAttention + BertSelfOutput)
    def __init__(self):
        super().__init__()
        self.query, self.key, self.value, self.dense = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)
        self.norm = nn.LayerNorm(H, eps=1e-12)

    def forward(self, x, kv, additive):
        b, t, _ = x.shape
        split = lambda y: y.view(y.shape[0], y.shape[1], 2, H // 2).permute(0, 2, 1, 3)
        q, k, v = split(self.query(x)), split(self.key(kv)), split(self.value(kv))
        scores = q @ k.transpose(-1, -2) / math.sqrt(H // 2)
        if additive is not None:
            scores = scores + additive
        ctx = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(b, t, H)
        return self.norm(self.dense(ctx) + x)


class HfBertLayer(nn.Module):
    def __init__(self, cross):
        super().__init__()
        self.attention = SelfOrCross()
        self.crossattention = SelfOrCross() if cross else None
        self.inter, self.out = nn.Linear(H, 64), nn.Linear(64, H)
        self.norm = nn.LayerNorm(H, eps=1e-12)

    def forward(self, x, self_mask, enc=None):
        x = self.attention(x, x, self_mask)
        if self.crossattention is not None:
            x = self.crossattention(x, enc, None)
        return self.norm(self.out(F.gelu(self.inter(x))) + x)


class HfBert(nn.Module):
    def __init__(self, layers, cross):
        super().__init__()
        self.word, self.position, self.token_type = nn.Embedding(VOCAB, H), nn.Embedding(POS, H), nn.Embedding(2, H)
        self.norm = nn.LayerNorm(H, eps=1e-12)
        self.layers = nn.ModuleList([HfBertLayer(cross) for _ in range(layers)])
        self.cross = cross

    def forward(self, ids=None, mask=None, inputs_embeds=None, encoder_hidden_states=None):
        x = inputs_embeds if inputs_embeds is not None else self.word(ids)
        t = x.shape[1]
        h = self.norm(x + self.token_type(torch.zeros(x.shape[0], t, dtype=torch.long)) + self.position(torch.arange(t).unsqueeze(0)))
        if self.cross:  # is_decoder: causal mask times the (all-ones) attention mask
            allowed = torch.tril(torch.ones(t, t, dtype=h.dtype))[None, None]
        else:
            allowed = mask[:, None, None, :].to(h.dtype)
        additive = (1.0 - allowed) * torch.finfo(h.dtype).min
        for layer in self.layers:
            h = layer(h, additive, encoder_hidden_states)
        return h

    def medvlp_state(self, prefix):
        s = {prefix + "embeddings.word_embeddings.weight": self.word.weight, prefix + "embeddings.position_embeddings.weight": self.position.weight,
             prefix + "embeddings.token_type_embeddings.weight": self.token_type.weight,
             prefix + "embeddings.LayerNorm.weight": self.norm.weight, prefix + "embeddings.LayerNorm.bias": self.norm.bias}
        for i, l in enumerate(self.layers):
            p = f"{prefix}encoder.layer.{i}."
            for name, att in [("attention", l.attention), ("crossattention", l.crossattention)]:
                if att is None:
                    continue
                for n in ["query", "key", "value"]:
                    s[f"{p}{name}.self.{n}.weight"], s[f"{p}{name}.self.{n}.bias"] = getattr(att, n).weight, getattr(att, n).bias
                s[f"{p}{name}.output.dense.weight"], s[f"{p}{name}.output.dense.bias"] = att.dense.weight, att.dense.bias
                s[f"{p}{name}.output.LayerNorm.weight"], s[f"{p}{name}.output.LayerNorm.bias"] = att.norm.weight, att.norm.bias
            s.update({p + "intermediate.dense.weight": l.inter.weight, p + "intermediate.dense.bias": l.inter.bias,
                      p + "output.dense.weight": l.out.weight, p + "output.dense.bias": l.out.bias,
                      p + "output.LayerNorm.weight": l.norm.weight, p + "output.LayerNorm.bias": l.norm.bias})
        return s


class LocalCrossAttention(nn.Module):  # released modules/local_attention.py
    def __init__(self, embed_dim):
        super().__init__()
        self.embed_dim = embed_dim
        self.query1, self.key1, self.value1 = nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, embed_dim)
        self.query2, self.key2, self.value2 = nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, embed_dim), nn.Linear(embed_dim, embed_dim)

    def forward(self, input_tensor1, input_tensor2):
        q1, k1, v1 = self.query1(input_tensor1), self.key1(input_tensor1), self.value1(input_tensor1)
        q2, k2, v2 = self.query2(input_tensor2), self.key2(input_tensor2), self.value2(input_tensor2)
        probs1 = torch.sigmoid(q2 @ k1.T / math.sqrt(self.embed_dim))
        context1 = probs1 @ v1
        probs2 = torch.sigmoid(q1 @ k2.T / math.sqrt(self.embed_dim))
        context2 = probs2 @ v2
        return context2, probs2, context1, probs1


class SPB(nn.Module):  # released modules/spb.py, noise-free
    def __init__(self, dim, n_embed, temp=0.9):
        super().__init__()
        self.dim, self.embed, self.curr_temp = dim, nn.Embedding(n_embed, dim), temp

    def forward(self, input):
        flatten = input.reshape(-1, self.dim)
        dist = flatten @ self.embed.weight.T
        self.gt_dist = dist
        soft_one_hot = F.softmax(dist / self.curr_temp, dim=1)  # F.gumbel_softmax without the noise
        output = soft_one_hot @ self.embed.weight
        return output, (output - flatten).abs().mean(), soft_one_hot.argmax(1)

    def cal_loss(self, input):
        flatten = input.reshape(-1, self.dim)
        dist = flatten @ self.embed.weight.T
        return F.kl_div(F.log_softmax(dist, dim=-1), F.log_softmax(self.gt_dist, dim=-1), reduction='batchmean', log_target=True)


def conv_relu(i, o):  # segmentation_models_pytorch Conv2dReLU with batch norm
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, i, o, size):
        super().__init__()
        self.conv1, self.conv2, self.output_size = conv_relu(i, o), conv_relu(o, o), size

    def forward(self, x):
        return self.conv2(self.conv1(F.interpolate(x, self.output_size, mode="nearest")))


class ImageDecoder(nn.Module):  # released decoders/image.py with sizes for a 64 x 64 input
    def __init__(self, embed_dim):
        super().__init__()
        self.image_dropout = nn.Dropout2d(0.0)
        chans = [embed_dim // (2 ** i) for i in range(6)]
        self.blocks = nn.ModuleList([DecoderBlock(chans[i], chans[i + 1], s) for i, s in enumerate([4, 8, 16, 32, 64])])
        self.output_head = nn.Sequential(nn.Conv2d(chans[-1], 1, kernel_size=3, padding=1))

    def forward(self, image_embed, text_embed, image):
        z = torch.cat([self.image_dropout(image_embed), text_embed], dim=1)
        for block in self.blocks:
            z = block(z)
        output = self.output_head(z)
        if image.size(2) != output.size(2) or image.size(3) != output.size(3):
            image = F.interpolate(image, size=output.size()[2:], mode='bilinear', align_corners=True)
        return F.l1_loss(output, image), output


class Prior(nn.Module):
    def __init__(self):
        super().__init__()
        self.image_encoder = ImageEncoder()
        self.text_encoder = HfBert(2, cross=False)
        self.global_text_attention = SentenceAttentionPool(D, 2)
        self.global_image_projection, self.local_image_projection = nn.Linear(128, D), nn.Linear(128, D)
        self.global_text_projection, self.local_text_projection = nn.Linear(H, D), nn.Linear(H, D)
        self.predictor = nn.Sequential(nn.Linear(D, D // 2), nn.ReLU(inplace=True), nn.Linear(D // 2, D))
        self.sentence_decoder = HfBert(2, cross=True)
        self.prototype_queries = nn.Parameter(torch.randn(1, Q, D))
        self.image_decoder = ImageDecoder(D * 2)
        self.local_cross_attention = LocalCrossAttention(D)
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.01))
        self.local_logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.01))
        self.sentence_bank = SPB(D, K)
        self.num_queries, self.embed_dim, self.lambda_proto = Q, D, 10

    def medvlp_state(self):
        s = {}
        for n, p in self.named_parameters():
            if n.startswith("text_encoder.") or n.startswith("sentence_decoder."):
                continue
            s["sentence_bank.prototypes" if n == "sentence_bank.embed.weight" else n] = p
        s.update(self.text_encoder.medvlp_state("text_encoder.encoder."))
        s.update(self.sentence_decoder.medvlp_state("sentence_decoder."))
        return s

    # ----- released methods (codes/prior/models/prior.py) -----
    def encode_image(self, image):
        local, glob = self.image_encoder(image)
        return self.local_image_projection(local), self.global_image_projection(glob)

    def encode_text(self, ids, mask):
        return self.local_text_projection(self.text_encoder(ids, mask))

    def item_gather(self, x, roi_mask):
        roi_words = []
        for b in range(x.shape[0]):
            words = [x[b][torch.where(roi_mask[b] == (i + 1))[0], :].mean(0, keepdim=True) for i in range(torch.max(roi_mask[b]).item())]
            roi_words.append(torch.cat(words, dim=0))
        return roi_words

    def global_alignment_loss(self, image_embed, text_embed):
        logit_scale = self.logit_scale.exp()
        labels = torch.arange(image_embed.size(0))
        image_embed, text_embed = F.normalize(image_embed, dim=-1, p=2), F.normalize(text_embed, dim=-1, p=2)
        lpi, lpt = logit_scale * image_embed @ text_embed.t(), logit_scale * text_embed @ image_embed.t()
        return (F.cross_entropy(lpi, labels) + F.cross_entropy(lpt, labels)) / 2

    def local_alignment_loss(self, local_image_embed_stacks, local_text_embed_stacks):
        total_image_loss, total_text_loss, stacks = 0., 0., []
        for idx in range(local_image_embed_stacks.size(0)):
            lt, li = local_text_embed_stacks[idx], local_image_embed_stacks[idx]
            t2i, _, i2t, _ = self.local_cross_attention(li, lt)
            total_image_loss += self.simsiam_loss_func(li, t2i, self.predictor)
            total_text_loss += self.text_local_loss_fn(lt, i2t)
            stacks.append(t2i.unsqueeze(0))
        self.text_to_local_image_embed_stacks = torch.cat(stacks, dim=0)
        n = local_image_embed_stacks.size(0)
        return total_image_loss / n, total_text_loss / n

    def text_local_loss_fn(self, embed_A, embed_B):
        logit_scale = self.local_logit_scale.exp()
        embed_A, embed_B = F.normalize(embed_A, dim=-1, p=2), F.normalize(embed_B, dim=-1, p=2)
        labels = torch.arange(embed_B.size(0)).long()
        return (F.cross_entropy(logit_scale * embed_B @ embed_A.t(), labels) + F.cross_entropy(logit_scale * embed_A @ embed_B.t(), labels)) / 2

    def simsiam_loss_func(self, x, y, predictor):
        p_x, p_y = predictor(x), predictor(y)
        return - (F.cosine_similarity(p_x, y.detach(), dim=-1).mean() + F.cosine_similarity(p_y, x.detach(), dim=-1).mean()) * 0.5

    def get_global_text_representation(self, stacks):
        return torch.cat([self.global_text_attention(s.unsqueeze(dim=0)) for s in stacks], dim=0)

    def rec_text_stacks(self, flatten_stacks, stacks):
        out, idx = [], 0
        for sample in stacks:
            out.append(flatten_stacks[idx: idx + sample.size(0)])
            idx += sample.size(0)
        return out

    def padding_sentence_stacks(self, stacks, max_length):
        padded = torch.zeros(len(stacks), max_length, self.embed_dim, dtype=stacks[0].dtype)
        mask = torch.zeros(len(stacks), max_length)
        for i, s in enumerate(stacks):
            padded[i, :len(s)] = s[:max_length]
            mask[i, :len(s)] = 1
        return padded, mask

    def spg_loss(self, logits, protos, sentence_masks):
        spg, total_logits, logits_stacks = 0., [], []
        for logit, proto, mask in zip(logits, protos, sentence_masks):
            inds = linear_sum_assignment(torch.cdist(logit, proto, p=1).detach().cpu())
            rearrange_logit = logit[inds[1]]
            length = mask.sum().int()
            spg += F.l1_loss(rearrange_logit, proto)
            total_logits.append(rearrange_logit[:length])
            logits_stacks.append(rearrange_logit[:length])
        spg = spg / len(logits)
        kl = self.sentence_bank.cal_loss(torch.cat(total_logits, dim=0))
        return spg * self.lambda_proto, kl, logits_stacks

    def recon_report(self, image_embed, padded_protos, mask, global_text_embed):
        queries = self.prototype_queries.repeat(image_embed.size(0), 1, 1)
        logits = self.sentence_decoder(inputs_embeds=queries, encoder_hidden_states=image_embed)
        spg, kl, logits_stacks = self.spg_loss(logits, padded_protos, mask)
        proto_logits, _, _ = self.sentence_bank(torch.cat(logits_stacks, dim=0))
        proto_logits = self.rec_text_stacks(proto_logits, logits_stacks)
        gpa = self.global_alignment_loss(self.get_global_text_representation(proto_logits), global_text_embed)
        return logits, spg, kl, gpa

    def stage(self, n, image, ids, mask, sentence_index):
        li, gi = self.encode_image(image)
        stacks = self.item_gather(self.encode_text(ids, mask), sentence_index)
        out = {"local_image": li, "global_image": gi}
        if n == 3:
            stacks = [s[:self.num_queries] for s in stacks]
        if n >= 2:
            proto, proto_loss, _ = self.sentence_bank(torch.cat(stacks, dim=0))
            proto_stacks = self.rec_text_stacks(proto, stacks)
        else:
            proto_stacks = stacks
        gt = self.get_global_text_representation(proto_stacks)
        g = self.global_alignment_loss(gi, gt)
        l_img, l_txt = self.local_alignment_loss(li, proto_stacks)
        out.update({"global_text": gt, "global": g, "local_image_loss": l_img, "local_text": l_txt})
        if n == 1:
            out["total"] = g + l_img + l_txt
            return out
        out["proto"] = proto_loss
        if n == 2:
            out["total"] = g + l_img + l_txt + proto_loss * self.lambda_proto
            return out
        padded, smask = self.padding_sentence_stacks(proto_stacks, self.num_queries)
        t2i = self.text_to_local_image_embed_stacks.view(-1, D, 2, 2)
        rec, rec_out = self.image_decoder(li.view(-1, D, 2, 2), t2i, image)
        logits, spg, kl, gpa = self.recon_report(li, padded, smask, gt)
        out.update({"rec_image": rec, "reconstruction": rec_out, "generated": logits, "spg": spg / self.lambda_proto, "kl": kl, "gpa": gpa})
        out["total"] = g * 10 + l_img + l_txt + rec + spg + kl + gpa + proto_loss * self.lambda_proto
        return out

    def zero_shot(self, image, prompt_ids, prompt_mask):  # downstream/zero_classification_model.py, one prompt per class
        li, gi = self.encode_image(image)
        probs = []
        for b in range(image.shape[0]):
            g_logits, l_logits = [], []
            for c in range(prompt_ids.shape[0]):
                x = self.text_encoder(prompt_ids[c:c + 1], prompt_mask[c:c + 1])
                tok = x[:, 1:-1, :][prompt_mask[c:c + 1, 1:-1] == 1].unsqueeze(0)
                tok = torch.cat(self.item_gather(self.local_text_projection(tok), torch.ones(1, tok.shape[1], dtype=torch.long)), dim=0).unsqueeze(1)
                q, _, _ = self.sentence_bank(tok)
                q = q.reshape(tok.shape)
                gt = self.get_global_text_representation(q)
                ie, te = F.normalize(gi[b:b + 1], dim=-1), F.normalize(gt, dim=-1)
                g_logits.append(((self.logit_scale * ie @ te.t()) + (self.logit_scale * te @ ie.t()).T) / 2)
                _, a_it, _, a_ti = self.local_cross_attention(li[b], q.squeeze(0))
                l_logits.append(((a_ti.mean() + a_it.mean()) / 2).reshape(1, 1))
            probs.append(F.softmax(torch.cat(g_logits, 1), dim=1) + F.softmax(torch.cat(l_logits, 1), dim=1) * 0.5)
        return torch.cat(probs, 0)


model = Prior()
with torch.no_grad():
    for n, p in model.named_parameters():
        if n in ("logit_scale", "local_logit_scale"):
            continue
        std = 0.3 if n.startswith("image_encoder.encoder.") else 0.2
        p.copy_(torch.randn_like(p) * std)
        if n.endswith("norm.weight") or ".bn" in n or "downsample.1" in n or n.endswith(".1.weight") and "image_decoder" in n:
            if n.endswith("weight"):
                p.add_(1.0)
    for n, b in model.named_buffers():
        if n.endswith("running_mean"):
            b.copy_(torch.randn_like(b) * 0.2)
        elif n.endswith("running_var"):
            b.copy_(torch.rand_like(b) + 0.5)

tensors = {}
state = model.medvlp_state()
for n, p in state.items():
    tensors[f"param/{n}"] = p.detach().clone()
for n, b in model.named_buffers():
    if not n.endswith("num_batches_tracked"):
        tensors[f"buffer/{n}"] = b.detach().clone()

# Four reports of 4, 2, 3 and 1 sentences; sentence_index as the released dataset builds it (0 / -1 = no sentence).
images = torch.randn(4, 1, SIDE, SIDE)
ids = torch.tensor([[2, 11, 12, 5, 13, 5, 14, 15, 16, 5, 17, 5, 3, 0, 0, 0],
                    [2, 21, 22, 23, 5, 24, 5, 3, 0, 0, 0, 0, 0, 0, 0, 0],
                    [2, 31, 5, 32, 33, 5, 34, 35, 36, 5, 3, 0, 0, 0, 0, 0],
                    [2, 41, 42, 43, 44, 5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
mask = (ids != 0).long()
sentence_index = torch.zeros_like(ids)
for r in range(ids.shape[0]):
    s = 1
    for i in range(1, ids.shape[1]):
        if ids[r, i] in (0, 2, 3):
            continue
        sentence_index[r, i] = s
        if ids[r, i] == 5:
            s += 1
prompt_ids = torch.tensor([[2, 11, 12, 45, 46, 3, 0, 0], [2, 21, 45, 46, 3, 0, 0, 0], [2, 31, 32, 33, 45, 46, 3, 0]])
prompt_mask = (prompt_ids != 0).long()
tensors.update({"input/images": images, "input/ids": ids.float(), "input/mask": mask.float(), "input/sentence_index": sentence_index.float(),
                "input/prompt_ids": prompt_ids.float(), "input/prompt_mask": prompt_mask.float()})

model.double()
model.train()
images = images.double()
keys = ["local_image", "global_image", "global_text", "global", "local_image_loss", "local_text", "proto", "rec_image", "reconstruction",
        "generated", "spg", "kl", "gpa", "total"]
for n in (1, 2, 3):
    out = model.stage(n, images, ids, mask, sentence_index)
    for k in keys:
        if k in out:
            v = out[k]
            tensors[f"s{n}/{k}"] = (v.reshape(1) if v.dim() == 0 else v).detach().clone()
    if n == 3:
        grad_names = ["image_encoder.encoder.conv1.weight", "image_encoder.encoder.layer4.0.conv3.weight", "image_encoder.atten_pool.positional_embedding",
                      "local_image_projection.weight", "global_image_projection.weight", "local_text_projection.weight",
                      "global_text_attention.q_proj.weight", "predictor.0.weight", "local_cross_attention.value2.weight",
                      "sentence_decoder.encoder.layer.1.crossattention.self.key.weight", "sentence_decoder.embeddings.position_embeddings.weight",
                      "prototype_queries", "image_decoder.blocks.0.conv1.0.weight", "image_decoder.output_head.0.bias",
                      "sentence_bank.prototypes", "logit_scale", "local_logit_scale", "text_encoder.encoder.encoder.layer.0.attention.self.query.weight"]
        grads = torch.autograd.grad(out["total"], [state[g] for g in grad_names])
        for g, v in zip(grad_names, grads):
            tensors[f"grad/{g}"] = v.detach().clone().reshape(v.shape if v.dim() else (1,))
for n, b in model.named_buffers():
    if not n.endswith("num_batches_tracked"):
        tensors[f"after/{n}"] = b.detach().clone()

model.eval()
with torch.no_grad():
    tensors["zs/scores"] = model.zero_shot(images, prompt_ids, prompt_mask)

offset = save_f32_safetensors(os.path.join(here, "prior_golden.safetensors"), tensors)
print("wrote prior_golden.safetensors: %d tensors; totals %.6f %.6f %.6f; size %d bytes" % (
    len(tensors), tensors["s1/total"].item(), tensors["s2/total"].item(), tensors["s3/total"].item(), offset))
